import { pino, type Logger } from 'pino';
import { IncrementalHash, type AgentStatus, type Change } from '@factsync/shared';
import { HistoryWriter } from './history.js';
import type { AgentConfig } from './config.js';
import { LocalStore } from './local-store.js';
import { Applier } from './applier.js';
import { SyncEngine } from './sync-engine.js';
import { ApplyGate } from './apply-gate.js';
import { Connection } from './connection.js';
import { ServerClient } from './server-client.js';
import { AppliedWaiters } from './applied-waiters.js';
import { loadState, saveState } from './state-file.js';
import { AgentTls } from './agent-tls.js';
import { buildLocalApi, type LocalApi } from './local-api.js';
import { Forwarder } from './forwarder.js';
import { AgentMetrics } from './metrics.js';
import { Decider } from './decide/decider.js';
import { UsageTracker } from './usage-tracker.js';


export interface AgentOptions {
  logger?: Logger;
  /** Test seam: called for every applied change, in apply order. */
  onApplied?: (c: Change) => void;
}

export interface PdpAgent {
  readonly config: Readonly<AgentConfig>;
  readonly store: LocalStore;
  readonly api: LocalApi;
  readonly metrics: AgentMetrics;
  readonly decider: Decider;
  readonly usage: UsageTracker;
  /** Reads that yield hold it; applies wait (apply-gate.ts). */
  readonly gate: ApplyGate;
  status(): AgentStatus;
  /**
   * Resolves true once `version` of `epoch` is applied (a bare version: of the
   * epoch last heard from the server), false when `timeoutMs` (null = never)
   * passes first. A state of another epoch never satisfies it (invariant 5).
   */
  waitApplied(version: number, timeoutMs: number | null, signal?: AbortSignal, epoch?: string): Promise<boolean>;
  /** The epoch a bare version refers to: the server's, as last heard. */
  serverEpoch(): string | null;
  /** Listen on config.host:port and connect; resolves to the local API URL. */
  start(): Promise<string>;
  close(): Promise<void>;
}

/**
 * The pdp-agent's composition root: one socket to the server (Connection), the
 * protocol engine (SyncEngine) over an applier that keeps versions in order,
 * optional persistence, and the local HTTP API.
 */
export async function createAgent(config: Readonly<AgentConfig>, opts: AgentOptions = {}): Promise<PdpAgent> {
  const log = opts.logger ?? pino({ level: config.logLevel }).child({ agentId: config.agentId, env: config.env });
  const history = config.historyFile ? new HistoryWriter(config.historyFile) : undefined;
  const store = new LocalStore(history ? new IncrementalHash() : undefined);
  const waiters = new AppliedWaiters();
  let changesApplied = 0;
  let snapshotsApplied = 0;
  const applier = new Applier(store, (c) => {
    changesApplied++;
    metrics.changesApplied.inc();
    history?.record(c.version, store.stateHash!, 'change', undefined, c.id);
    opts.onApplied?.(c);
  }, (version, epoch) => {
    snapshotsApplied++;
    metrics.snapshots.inc();
    history?.recordSnapshot(version, epoch, store);
  });
  const tls = new AgentTls(config.tls);
  const client = new ServerClient(config.serverUrls, config.token.current, undefined, tls.fetch);
  const decider = new Decider(store, config.tenants ? new Set(config.tenants) : undefined);
  const usage = new UsageTracker();

  let dirty = false;
  /** A state came from DATA_DIR: with it the agent may answer, stale, while no server does (offline operation). */
  let restored = false;

  if (config.dataDir) {
    const loaded = await loadState(config.dataDir, config.env, config.tenants);
    if (loaded.kind === 'ok') {
      restored = true;
      store.replace(loaded.state.version, loaded.state.epoch, loaded.state.facts, loaded.state.id ?? null);
      history?.record(store.version, store.stateHash!, 'restore', store.epoch, store.lastId);
      log.info({ version: store.version, facts: store.size }, 'resumed from DATA_DIR');
    } else if (loaded.kind === 'invalid') {
      log.error({ reason: loaded.reason }, 'state file in DATA_DIR is unusable; ignoring it and loading a snapshot');
    }
  }

  const metrics: AgentMetrics = new AgentMetrics({
    applied: () => store.version,
    head: () => Math.max(engine.head, store.version),
    connected: () => conn.isOpen,
    stale: () => !engine.fresh,
    facts: () => store.size,
    reconnects: () => conn.reconnects,
  });
  const gate = new ApplyGate();
  const engine: SyncEngine = new SyncEngine({
    env: config.env, agentId: config.agentId, tenants: config.tenants, store, applier, client, waiters, metrics, log, gate,
    link: () => conn,
    onDirty: () => (dirty = true),
    usage,
  });
  const conn = new Connection(
    { urls: config.serverUrls, token: config.token.fresh, tls: () => tls.connect(), reconnectMinMs: config.reconnectMinMs, reconnectMaxMs: config.reconnectMaxMs, serverTimeoutMs: config.serverTimeoutMs, agentId: config.agentId, log },
    {
      hello: () => engine.hello(),
      // A frame waits while a read that yields holds its version (apply-gate.ts); a welcome or an error too, to keep order.
      message: (m) => gate.run(() => engine.onMessage(m)),
      invalidFrame: () => metrics.invalidFrames.inc(),
      connected: (up) => {
        if (!up) engine.disconnected();
      },
    },
  );

  const isReady = (): boolean => engine.ready || (restored && !config.readyRequiresSync);
  // One line when answers go stale and one when they are fresh again, not one per probe.
  let loggedStale = false;
  const freshnessTimer = setInterval(() => {
    const stale = !engine.fresh;
    // Not before a connect has failed: at start the first socket is still opening (npm start starts both at once).
    if (stale && !loggedStale && isReady() && !conn.isOpen && conn.reconnects > 0) {
      loggedStale = true;
      log.warn({ applied: store.version, restored: !engine.ready }, engine.ready
        ? 'stale: no server answers; serving the last state applied until one does'
        : 'offline: no server answers; serving the state restored from DATA_DIR until one does (READY_REQUIRES_SYNC=true waits instead)');
    } else if (!stale && loggedStale) {
      loggedStale = false;
      log.info({ applied: store.version }, 'fresh again: caught up with the server');
    }
  }, 250);
  freshnessTimer.unref();

  const usageTimer = setInterval(() => engine.reportUsage(), config.usageReportMs);
  usageTimer.unref();
  const persistTimer = config.dataDir
    ? setInterval(() => void persist(), config.persistIntervalMs)
    : undefined;
  persistTimer?.unref();
  let saving: Promise<void> | undefined;
  let nextSaveAtMs = 0;
  /**
   * One save at a time, never queued: a save copies the whole state. Saves of a
   * large state are spaced so that writing takes at most a tenth of the time
   * (a stale file only means more catch-up from the log after a restart).
   */
  function persist(force = false): Promise<void> {
    if (saving) return saving;
    if (!config.dataDir || !dirty || (!force && Date.now() < nextSaveAtMs)) return Promise.resolve();
    dirty = false;
    const started = Date.now();
    const snapshot = { env: config.env, tenants: config.tenants ?? null, version: store.version, epoch: store.epoch, id: store.lastId, facts: [...store.all()] };
    saving = saveState(config.dataDir, snapshot).then(
      () => void (nextSaveAtMs = Date.now() + 9 * (Date.now() - started)),
      (e: Error) => {
        dirty = true;
        log.error({ err: e.message }, 'could not persist state to DATA_DIR');
      },
    ).finally(() => (saving = undefined));
    return saving;
  }

  const agent: PdpAgent = {
    config,
    store,
    metrics,
    decider,
    usage,
    gate,
    api: undefined as unknown as LocalApi,
    status: () => ({
      agent_id: config.agentId, env: config.env, applied: store.version, head: Math.max(engine.head, store.version),
      connected: conn.isOpen, connection: conn.state, ready: isReady(), stale: !engine.fresh, epoch: store.epoch, server: conn.serverUrl.origin, facts: store.size, reconnects: conn.reconnects,
      changes_applied: changesApplied, snapshots_applied: snapshotsApplied,
      ...(config.tenants ? { tenants: [...config.tenants] } : {}),
    }),
    waitApplied: (version, timeoutMs, signal, epoch) =>
      waiters.wait({ version: store.version, epoch: store.epoch }, { version, epoch: epoch ?? engine.serverEpoch }, timeoutMs, signal),
    serverEpoch: () => engine.serverEpoch,
    async start() {
      const url = await agent.api.listen();
      conn.start();
      return url;
    },
    async close() {
      // Checked users not yet reported go out with the goodbye (the server stores them before it sees the close).
      engine.reportUsage();
      clearInterval(usageTimer);
      clearInterval(freshnessTimer);
      engine.close();
      waiters.close();
      await agent.api.close();
      await conn.close();
      if (persistTimer) clearInterval(persistTimer);
      await saving;
      await persist(true);
    },
  };
  const forwarder = new Forwarder({
    client, env: config.env, agentId: config.agentId, preferred: () => conn.serverUrl,
    appliedIn: (epoch) => (store.epoch === epoch ? store.version : 0),
    heardEpoch: (epoch) => engine.heardEpoch(epoch),
    waitApplied: agent.waitApplied, log,
  });
  (agent as { api: LocalApi }).api = await buildLocalApi(agent, forwarder, log);
  return agent;
}
