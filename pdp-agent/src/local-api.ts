import { Type } from '@sinclair/typebox';
import { createHttpApp, type TypedApp } from '@factsync/shared/http-app';
import type { Logger } from 'pino';
import { timingSafeEqual, createHash } from 'node:crypto';
import { AgentStatus, AtLeastQuery, Fact, FactKey, FactType, FactsyncError, isLoopbackHost } from '@factsync/shared';
import type { AgentStatus as AgentStatusValue } from '@factsync/shared';
import type { AgentConfig } from './config.js';
import type { Decider } from './decide/decider.js';
import type { LocalStore } from './local-store.js';
import type { AgentMetrics } from './metrics.js';
import type { UsageTracker } from './usage-tracker.js';
import type { Forwarder } from './forwarder.js';
import { createForward, registerWriteRoutes } from './write-api.js';
import { registerPermitRoutes } from './permit/permit-api.js';
import { VERSION_HEADER, awaitAtLeast, registerCheckRoutes } from './check-api.js';
import type { ApplyGate } from './apply-gate.js';
import { registerAuthzenRoutes } from './authzen-api.js';
import { createPermitViews } from './permit/views.js';

/** What the local API needs of the agent (the agent is one; the API does not know the rest of it). */
export interface LocalApiDeps {
  readonly config: Readonly<AgentConfig>;
  readonly store: LocalStore;
  readonly metrics: AgentMetrics;
  readonly decider: Decider;
  readonly usage: UsageTracker;
  status(): AgentStatusValue;
  waitApplied(version: number, timeoutMs: number | null, signal?: AbortSignal, epoch?: string): Promise<boolean>;
  serverEpoch(): string | null;
  readonly gate: ApplyGate;
}

export interface LocalApi {
  app: TypedApp;
  listen(): Promise<string>;
  close(): Promise<void>;
}

const ErrorBody = Type.Object({ error: Type.String(), message: Type.String() }, { additionalProperties: true });
const sha = (s: string) => createHash('sha256').update(s).digest();
const LIVE = ['/healthz', '/health', '/healthy'];
const READY = ['/readyz', '/ready'];
const encodeCursor = (key: string) => Buffer.from(key, 'utf8').toString('base64url');

/** The agent's local HTTP API (docs/api.md, "pdp-agent local API"): reads, status, health. */
export async function buildLocalApi(agent: LocalApiDeps, forwarder: Forwarder, log: Logger): Promise<LocalApi> {
  const { config } = agent;
  const app = await createHttpApp({
    log, bodyLimit: config.bodyLimitBytes, bodyLimitVar: 'BODY_LIMIT_BYTES', limits: config.limits,
    openapi: { title: 'factsync pdp-agent', description: 'Local reads and checks, writes forwarded to the server, waiting for sync, the Permit PDP and AuthZEN APIs' },
  });

  if (isLoopbackHost(config.host)) {
    // DNS rebinding: a web page whose name now points at 127.0.0.1 reaches a loopback agent, but its
    // requests still say their own Host. Only this host's names are served.
    app.addHook('onRequest', async (req) => {
      const name = hostName(req.headers.host ?? '');
      if (name !== '' && !isLoopbackHost(name)) {
        throw new FactsyncError('forbidden', `Host "${name}" is not this agent's: an agent bound to ${config.host} answers requests for localhost, 127.0.0.1 or [::1] only (a page on another site cannot reach it by DNS rebinding)`);
      }
    });
  }

  if (config.apiToken) {
    const expected = sha(config.apiToken);
    const open = new Set([...LIVE, ...READY, '/metrics', '/.well-known/authzen-configuration']);
    app.addHook('onRequest', async (req) => {
      const path = req.url.split('?')[0]!;
      if (open.has(path) || path.startsWith('/docs')) return;
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (!m || !timingSafeEqual(sha(m[1]!), expected)) {
        throw new FactsyncError('unauthorized', 'this agent requires AGENT_API_TOKEN: send Authorization: Bearer <token>');
      }
    });
  }

  const readYourWrites = { waitApplied: agent.waitApplied, serverEpoch: agent.serverEpoch, store: agent.store, gate: agent.gate, defaultWaitSeconds: config.defaultWaitSeconds };
  const checkDeps = { ...readYourWrites, decider: agent.decider, usage: agent.usage, metrics: agent.metrics, log, decisionLog: config.decisionLog };
  registerCheckRoutes(app, checkDeps);
  registerAuthzenRoutes(app, checkDeps);

  app.get('/v1/facts/:type/:key', {
    schema: {
      params: Type.Object({ type: FactType, key: FactKey }),
      querystring: AtLeastQuery,
      headers: Type.Object({ 'x-wait-timeout': Type.Optional(Type.String()) }),
      response: { 200: Type.Object({ type: Type.String(), key: Type.String(), value: Type.Record(Type.String(), Type.Unknown()) }), '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req, reply) => {
    const { type, key } = req.params;
    await awaitAtLeast(req, reply, readYourWrites);
    void reply.header(VERSION_HEADER, agent.store.version);
    const fact = agent.store.get(type, key);
    if (!fact) agent.decider.requireAbsentIsKnown(type, key);
    if (!fact) throw new FactsyncError('not_found', `no ${type} "${key}" on this agent (applied version ${agent.store.version})`);
    return fact;
  });

  app.get('/v1/facts', {
    schema: {
      querystring: Type.Object({
        type: FactType,
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 100 })),
        cursor: Type.Optional(Type.String({ maxLength: 1024 })),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ facts: Type.Array(Fact), next_cursor: Type.Union([Type.String(), Type.Null()]) }), '4xx': ErrorBody },
    },
  }, async (req) => {
    const q = req.query;
    const after = q.cursor === undefined ? undefined : Buffer.from(q.cursor, 'base64url').toString('utf8');
    const page = agent.store.list(q.type, q.limit ?? 100, after);
    return { facts: page.facts, next_cursor: page.next === null ? null : encodeCursor(page.next) };
  });

  app.get('/v1/status', {
    schema: { summary: 'This agent: identity, applied and head versions, connection', querystring: Type.Object({ digest: Type.Optional(Type.Boolean()) }), response: { 200: AgentStatus } },
  }, async (req) => {
    const { digest } = req.query;
    return { ...agent.status(), ...(digest ? { digest: agent.store.digest() } : {}) };
  });

  const writeDeps = { forwarder, store: agent.store, decider: agent.decider, defaultWaitSeconds: config.defaultWaitSeconds, metrics: agent.metrics };
  const forward = createForward(writeDeps);
  registerWriteRoutes(app, writeDeps, forward);
  await registerPermitRoutes(app, forward, {
    env: config.env, store: agent.store, decider: agent.decider, readYourWrites, gate: agent.gate,
    views: createPermitViews(config.env, agent.store, agent.decider.index),
  });
  app.get('/metrics', { schema: { summary: 'Prometheus metrics' } }, async (_req, reply) =>
    reply.type(agent.metrics.registry.contentType).send(await agent.metrics.registry.metrics()));

  // /health, /healthy and /ready are the paths the Permit PDP's Helm chart probes.
  for (const url of LIVE) app.get(url, { schema: { summary: 'Liveness', tags: ['health'] } }, async () => ({ status: 'ok' }));
  for (const url of READY) app.get(url, { schema: { summary: 'Readiness: bootstrapped', tags: ['health'] } }, async (_req, reply) => {
    const s = agent.status();
    if (!s.ready) {
      return reply.status(503).send({ error: 'not_synced', message: agent.config.readyRequiresSync && s.applied > 0
        ? `not caught up with a server yet (applied ${s.applied}, connected ${s.connected}; READY_REQUIRES_SYNC=true)`
        : `not bootstrapped yet (applied ${s.applied}, connected ${s.connected})` });
    }
    // Ready and stale: restored or cut off, answering from the last state applied (offline operation).
    return { status: 'ok', stale: s.stale, applied: s.applied, connected: s.connected };
  });

  return {
    app,
    async listen() {
      await app.listen({ port: config.port, host: config.host });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.port;
      return `http://${config.host}:${port}`;
    },
    close: () => app.close(),
  };
}

/** The name of a Host header, without its port (`[::1]:7766` → `::1`). */
function hostName(header: string): string {
  const h = header.trim();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}
