import websocket from '@fastify/websocket';
import { pino, type Logger } from 'pino';
import { usageMonth } from '@factsync/shared';
import { createHttpApp, type TypedApp } from '@factsync/shared/http-app';
import type { ServerConfig } from './config.js';
import { createAuthenticator, StaticTokens } from './auth.js';
import { JwtVerifier } from './jwt.js';
import { httpsOptions, watchCertificates } from './tls.js';
import type { Server as HttpsServer } from 'node:https';
import { tokenRoutes } from './routes/tokens.js';
import type { FactStore } from './store/fact-store.js';
import { createRedisStore } from './store/redis-store.js';
import { createMemoryStore } from './store/memory-store.js';
import { createEmbeddedStore } from './store/embedded-store.js';
import { Broadcaster, type BroadcasterHooks } from './broadcast/broadcaster.js';
import { ControlPlane } from './control/control-plane.js';
import { Gateway } from './ws/gateway.js';
import { StoreWatch } from './store/store-watch.js';
import { ServerMetrics } from './metrics.js';
import { GroupCommit } from './store/group-commit.js';
import { TokenSlots } from './token-slots.js';
import { factsRoutes } from './routes/facts.js';
import { factReadRoutes } from './routes/fact-reads.js';
import { readRoutes } from './routes/reads.js';
import { usageRoutes } from './routes/usage.js';
import { syncRoutes } from './routes/sync.js';
import { healthRoutes } from './routes/health.js';
import { statusRoutes } from './routes/status.js';
import { envRoutes } from './routes/envs.js';
import { EnvDirectory } from './env-directory.js';

/** How often the factsync_mau gauge re-reads the counts. */
const MAU_REFRESH_MS = 60_000;
/** A source records a position at least every heartbeat; its lag metric may be this stale. */
const SOURCES_REFRESH_MS = 5_000;

export interface ServerOptions {
  /** Use this store instead of building one from the config (tests share one across replicas). */
  store?: FactStore;
  logger?: Logger;
  hooks?: BroadcasterHooks;
  /** What a 401 for an unknown token says instead of "check AUTH_TOKENS on the server" (npm start names its dev token). */
  unknownTokenHint?: string;
}

export interface FactsyncServer {
  app: TypedApp;
  metrics: ServerMetrics;
  store: FactStore;
  broadcaster: Broadcaster;
  gateway: Gateway;
  config: Readonly<ServerConfig>;
  /** Listen on config.host:config.port (0 = a free port); resolves to the base URL. */
  listen(): Promise<string>;
  /** Graceful: stop accepting, answer waiters, close sockets, flush acks, close the store. */
  close(): Promise<void>;
}

export function buildStore(config: Readonly<ServerConfig>, log: Logger, onError?: () => void): Promise<FactStore> {
  const common = {
    logRetention: config.logRetention, idempotencyTtlSeconds: config.idempotencyTtlSeconds, inlineChangeBytes: config.inlineChangeBytes,
    agentRecordTtlMs: config.agentRecordTtlMs,
  };
  if (!config.redisUrl && config.dataDir) {
    const dataDir = config.dataDir;
    log.info({ dataDir }, 'embedded store: loading');
    const t0 = Date.now();
    const { store, envs, facts } = createEmbeddedStore({ ...common, dataDir, onLoadProgress: (n) => log.info({ facts: n }, 'embedded store: loading') });
    log.info({ dataDir, envs, facts, ms: Date.now() - t0 }, 'embedded store: loaded');
    return Promise.resolve(store);
  }
  if (!config.redisUrl) {
    log.warn('no REDIS_URL and no DATA_DIR: the store is in memory only and forgets everything when the server stops (set DATA_DIR to keep it)');
    return Promise.resolve(createMemoryStore(common));
  }
  return createRedisStore({
    ...common, url: config.redisUrl, cluster: config.redisCluster, keyPrefix: config.keyPrefix, commandTimeoutMs: config.redisCommandTimeoutMs,
    waitReplicas: config.redisWaitReplicas, waitReplicasTimeoutMs: config.redisWaitTimeoutMs, log, onError,
  });
}

export async function createServer(config: Readonly<ServerConfig>, opts: ServerOptions = {}): Promise<FactsyncServer> {
  const log = opts.logger ?? pino({
    level: config.logLevel,
    redact: ['req.headers.authorization', 'headers.authorization'],
  }).child({ replica: config.replicaId });
  const ownsStore = !opts.store;
  let metrics: ServerMetrics | undefined;
  const store = opts.store ?? await buildStore(config, log, () => metrics?.redisErrors.inc());

  const app = await createHttpApp({
    ...(config.tls ? { https: httpsOptions(config.tls) } : {}),
    log, bodyLimit: config.bodyLimitBytes, bodyLimitVar: 'BODY_LIMIT_BYTES', requestIdHeader: 'x-request-id', forceCloseConnections: false, limits: config.limits,
    openapi: { title: 'factsync server', description: 'Versioned, acknowledged distribution of authorization facts', bearer: true },
    onError: (e, _error, req, reply) => {
      metrics?.rejected.inc({ code: e.code });
      if (e.code !== 'internal' && e.status >= 500) req.log.warn({ code: e.code, msg: e.message }, 'request failed');
      if (e.code === 'store_unavailable' || e.code === 'shutting_down') void reply.header('retry-after', '1');
    },
  });
  const auth = createAuthenticator(new StaticTokens(config.tokens, config.authTokensFile, log), opts.unknownTokenHint, config.jwt && new JwtVerifier(config.jwt));
  const envs = new EnvDirectory(store, { autoCreate: config.envsAutoCreate, declared: config.envs });
  const broadcaster = new Broadcaster(store, log, { healIntervalMs: config.healIntervalMs, pageSize: config.changesPageSize, frameBytes: config.wsMaxFrameBytes }, opts.hooks);
  const control = new ControlPlane(store, log, {
    replicaId: config.replicaId, leaseMs: config.leaseMs, refreshMs: config.syncRefreshMs, lingerMs: 30_000,
    onReplaced: (_env, _id, session) => gateway.replaced(session),
  });
  // Read by the metrics and the gateway only once the app runs, after storeWatch exists.
  const storeReachable = (): boolean => storeWatch.health === 'reachable';
  let mauCache: { at: number; rows: Promise<{ env: string; mau: number }[]> } | undefined;
  let sourcesCache: { at: number; rows: Promise<{ env: string; source: string; updatedAtMs: number }[]> } | undefined;
  /** Envs a source wrote to through this replica (the lag metric reads their sources). */
  const sourceEnvs = new Set<string>();
  metrics = new ServerMetrics({
    sessions: () => gateway.sessions,
    feedHeads: () => broadcaster.feedHeads(),
    gapsRepaired: () => broadcaster.gapsRepaired,
    snapshotStreams: () => ({ running: gateway.snapshots.streaming, queued: gateway.snapshots.queued }),
    storeReachable,
    // A count per served env, read at most once a minute however often /metrics is scraped:
    // monthly users move slowly, and 10k envs must not mean 10k Redis reads per scrape.
    mau: () => {
      const now = Date.now();
      if (!mauCache || now - mauCache.at > MAU_REFRESH_MS) {
        const month = usageMonth(now);
        const envs = [...broadcaster.feedHeads()].map((f) => f.env);
        const rows = Promise.all(envs.map(async (env) => ({ env, mau: await store.usage(env, month) })));
        mauCache = { at: now, rows };
        rows.catch(() => (mauCache = undefined));
      }
      return mauCache.rows;
    },
    // Read at most every few seconds, for the envs this replica serves or took a source's write for.
    sources: () => {
      const now = Date.now();
      if (!sourcesCache || now - sourcesCache.at > SOURCES_REFRESH_MS) {
        const envs = new Set([...broadcaster.feedHeads()].map((f) => f.env));
        for (const e of sourceEnvs) envs.add(e);
        const rows = Promise.all([...envs].map(async (env) => (await store.sources(env)).map((r) => ({ env, source: r.name, updatedAtMs: Date.parse(r.updatedAt) })))).then((x) => x.flat());
        sourcesCache = { at: now, rows };
        rows.catch(() => (sourcesCache = undefined));
      }
      return sourcesCache.rows;
    },
  }, config.metricsAgentLabels);
  const gateway: Gateway = new Gateway({
    store, broadcaster, control, auth, log, metrics, replicaId: config.replicaId, leaseMs: config.leaseMs, leaseRenewMs: config.leaseRenewMs,
    pingIntervalMs: config.pingIntervalMs, pageSize: config.changesPageSize, frameBytes: config.wsMaxFrameBytes, maxSnapshotStreams: config.maxSnapshotStreams, maxBufferedBytes: config.wsMaxBufferedBytes, maxPayloadBytes: config.wsMaxPayloadBytes, helloTimeoutMs: config.helloTimeoutMs,
    maxConnectionsPerToken: config.maxConnectionsPerToken, storeReachable, envs,
  });
  const storeWatch = new StoreWatch({ ping: () => store.ping(), lostAfterMs: config.storeLostMs, log, onLost: () => gateway.storeLost() });
  let closing = false;

  await app.register(websocket, { options: { maxPayload: config.wsMaxPayloadBytes } });
  gateway.register(app);
  broadcaster.onFork = (env) => metrics.historyForks.inc({ env, where: 'feed' });
  const commit = new GroupCommit(store, {
    // Small writes gain most from sharing a call; large ones already fill one, and a group past the
    // inline doorbell budget would make every feed read the log: groups stop at ~1,000 ops.
    maxWrites: 256, maxOps: 1000, onGroup: (n) => metrics.writeGroupSize.observe(n),
  });
  const ctx = { store, commit, control, auth, config, metrics, snapshots: gateway.snapshots, waits: new TokenSlots(config.maxWaitsPerToken, 'waiting requests', 'MAX_WAITS_PER_TOKEN'), envs,
    sourceWrote: (env: string) => {
      if (sourceEnvs.size < 10_000) sourceEnvs.add(env);
    },
  };
  app.get('/metrics', { schema: { summary: 'Prometheus metrics' } }, async (_req, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  factsRoutes(app, ctx);
  readRoutes(app, ctx);
  factReadRoutes(app, ctx);
  tokenRoutes(app, ctx);
  usageRoutes(app, ctx);
  syncRoutes(app, ctx);
  healthRoutes(app, store, () => closing);
  const status = statusRoutes(app, ctx);
  envRoutes(app, ctx);

  // An answer finished after close began (a waiter released by the shutdown) must not leave its
  // keep-alive connection open: server.close() closes only the connections idle when it is called.
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('preClose', async () => {
    closing = true;
    storeWatch.stop();
    gateway.closeAll();
    status.closeStreams();
    await control.close();
  });
  app.addHook('onClose', async () => {
    await broadcaster.close();
    if (ownsStore) await store.close();
  });

  let stopWatching: (() => void) | undefined;
  return {
    app, store, broadcaster, gateway, config, metrics,
    async listen() {
      await envs.createDeclared();
      await app.listen({ port: config.port, host: config.host });
      if (config.tls) stopWatching = watchCertificates(config.tls, app.server as unknown as HttpsServer, log);
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.port;
      return `${config.tls ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    },
    async close() {
      stopWatching?.();
      await app.close();
    },
  };
}
