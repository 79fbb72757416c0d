import { pino, type Logger } from 'pino';
import { IncrementalHash, assertNever, type AgentStatus, type Change, type Fact, type ServerMessage } from '@factsync/shared';
import { HistoryWriter } from './history.js';
import type { AgentConfig } from './config.js';
import { LocalStore } from './local-store.js';
import { Applier, type OfferResult } from './applier.js';
import { Connection } from './connection.js';
import { ServerClient } from './server-client.js';
import { AppliedWaiters } from './applied-waiters.js';
import { loadState, saveState } from './state-file.js';
import { buildLocalApi, type LocalApi } from './local-api.js';
import { Forwarder } from './forwarder.js';
import { AgentMetrics } from './metrics.js';


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
  status(): AgentStatus;
  /** Resolves true once `version` is applied, false when `timeoutMs` (null = never) passes first. */
  waitApplied(version: number, timeoutMs: number | null, signal?: AbortSignal): Promise<boolean>;
  /** Listen on config.host:port and connect; resolves to the local API URL. */
  start(): Promise<string>;
  close(): Promise<void>;
}

/**
 * The pdp-agent: one socket to the server, an applier that keeps versions in
 * order, coalesced acks, optional persistence, and the local HTTP API.
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
    history?.record(c.version, store.stateHash!, 'change');
    opts.onApplied?.(c);
  }, (version, epoch) => {
    snapshotsApplied++;
    metrics.snapshots.inc();
    history?.recordSnapshot(version, epoch, store);
  });
  const client = new ServerClient(config.serverUrls, config.token);

  let head = 0;
  let ready = false;
  let welcomed = false;
  let awaitingSnapshot = false;
  let bootHead = 0;
  /** Highest version the current socket has delivered: acks must never run ahead of it (the server checks). */
  let socketSent = 0;
  let lastAck = 0;
  let ackScheduled = false;
  let repairing = false;
  let dirty = false;
  let closed = false;

  if (config.dataDir) {
    const loaded = await loadState(config.dataDir, config.env);
    if (loaded.kind === 'ok') {
      store.replace(loaded.state.version, loaded.state.epoch, loaded.state.facts);
      history?.record(store.version, store.stateHash!, 'restore', store.epoch);
      log.info({ version: store.version, facts: store.size }, 'resumed from DATA_DIR');
    } else if (loaded.kind === 'invalid') {
      log.error({ reason: loaded.reason }, 'state file in DATA_DIR is unusable; ignoring it and loading a snapshot');
    }
  }

  const metrics = new AgentMetrics({
    applied: () => store.version,
    head: () => Math.max(head, store.version),
    connected: () => conn.isOpen,
    facts: () => store.size,
    reconnects: () => conn.reconnects,
  });
  const conn = new Connection(
    { urls: config.serverUrls, token: config.token, reconnectMinMs: config.reconnectMinMs, reconnectMaxMs: config.reconnectMaxMs, serverTimeoutMs: config.serverTimeoutMs, log },
    {
      hello: () => ({ type: 'hello', env: config.env, agent_id: config.agentId, applied: store.version, epoch: store.epoch, ack: true }),
      message: (m) => onMessage(m),
      connected: (up) => {
        if (!up) {
          socketSent = 0;
          lastAck = 0;
        }
      },
    },
  );

  function onMessage(m: ServerMessage): void {
    switch (m.type) {
      case 'welcome': {
        // Versions of another epoch say nothing about this one: the head starts over with it.
        head = m.epoch !== store.epoch ? m.head : Math.max(head, m.head);
        if (!ready) bootHead = Math.max(bootHead, m.head);
        // Mirrors the server's rule: a snapshot comes on first start (no epoch), on another epoch, or when ahead of the store.
        const snapshotComing = m.epoch !== store.epoch || store.version > m.head;
        if (store.version > 0 && snapshotComing) {
          log.error({ applied: store.version, epoch: store.epoch, serverEpoch: m.epoch, head: m.head },
            'local state is from another epoch or ahead of the server: the store lost data; resyncing from a snapshot');
        }
        socketSent = snapshotComing ? 0 : store.version;
        awaitingSnapshot = snapshotComing;
        welcomed = true;
        if (snapshotComing) applier.clearBuffer();
        conn.markHealthy();
        afterApply({ kind: 'ok', applied: store.version, count: 0 });
        return;
      }
      case 'snapshot': {
        socketSent = m.version;
        awaitingSnapshot = false;
        dirty = true;
        head = Math.max(head, m.version);
        const end = metrics.applyDuration.startTimer({ kind: 'snapshot' });
        const r = applier.snapshot(m.version, m.epoch, m.facts as Fact[]);
        end();
        log.info({ version: m.version, facts: m.facts.length }, 'snapshot applied');
        afterApply(r);
        return;
      }
      case 'changes': {
        const last = m.changes[m.changes.length - 1]!.version;
        socketSent = Math.max(socketSent, last);
        head = Math.max(head, last);
        const end = metrics.applyDuration.startTimer({ kind: 'changes' });
        const r = applier.offer(m.changes as Change[]);
        end();
        afterApply(r);
        return;
      }
      case 'error':
        log.warn({ code: m.error, message: m.message }, 'server closed the session with an error');
        return;
      default:
        assertNever(m, 'server message');
    }
  }

  function afterApply(r: OfferResult): void {
    if (r.count > 0) dirty = true;
    waiters.advance(store.version);
    if (!ready && welcomed && !awaitingSnapshot && store.version >= bootHead) {
      ready = true;
      log.info({ applied: store.version }, 'bootstrapped; ready');
    }
    scheduleAck();
    if (r.kind === 'gap') void repair(r.before);
  }

  function scheduleAck(): void {
    if (ackScheduled) return;
    ackScheduled = true;
    // Coalesce: a burst of frames in one tick is acked once, with the highest version.
    setImmediate(() => {
      ackScheduled = false;
      const v = Math.min(store.version, socketSent);
      if (v > lastAck && conn.send({ type: 'ack', version: v })) lastAck = v;
    });
  }

  /** Missing versions behind a gap: read them over HTTP from the same replica; a snapshot if the log moved on. */
  async function repair(before: number): Promise<void> {
    if (repairing) return;
    repairing = true;
    log.warn({ applied: store.version, before }, 'gap detected; repairing from the change log');
    metrics.gaps.inc();
    try {
      while (!closed && applier.buffered > 0 && store.version < before) {
        const a = await client.request<{ head: number; epoch: string | null; changes: Change[] }>(
          'GET', `/v1/envs/${config.env}/changes?after=${store.version}&limit=1000`, { preferred: conn.serverUrl });
        if (a.status === 410) {
          const s = await client.call<{ version: number; epoch: string | null; facts: Fact[] }>('GET', `/v1/envs/${config.env}/snapshot`, { preferred: conn.serverUrl });
          afterApply(applier.snapshot(s.body.version, s.body.epoch, s.body.facts));
          continue;
        }
        if (a.status !== 200 || a.body.epoch !== store.epoch || a.body.changes.length === 0) {
          conn.restart(`gap repair got status ${a.status}; resuming through a new session`);
          return;
        }
        afterApply(applier.offer(a.body.changes));
      }
    } catch (e) {
      conn.restart(`gap repair failed: ${(e as Error).message}`);
    } finally {
      repairing = false;
    }
  }

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
    const snapshot = { env: config.env, version: store.version, epoch: store.epoch, facts: [...store.all()] };
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
    api: undefined as unknown as LocalApi,
    status: () => ({
      agent_id: config.agentId, env: config.env, applied: store.version, head: Math.max(head, store.version),
      connected: conn.isOpen, connection: conn.state, ready, epoch: store.epoch, server: conn.serverUrl.origin, facts: store.size, reconnects: conn.reconnects,
      changes_applied: changesApplied, snapshots_applied: snapshotsApplied,
    }),
    waitApplied: (version, timeoutMs, signal) => waiters.wait(store.version, version, timeoutMs, signal),
    async start() {
      const url = await agent.api.listen();
      conn.start();
      return url;
    },
    async close() {
      closed = true;
      waiters.close(store.version);
      await agent.api.close();
      await conn.close();
      if (persistTimer) clearInterval(persistTimer);
      await saving;
      await persist(true);
    },
  };
  const forwarder = new Forwarder({
    client, env: config.env, agentId: config.agentId, preferred: () => conn.serverUrl, applied: () => store.version,
    waitApplied: agent.waitApplied, log,
  });
  (agent as { api: LocalApi }).api = await buildLocalApi(agent, forwarder, log);
  return agent;
}
