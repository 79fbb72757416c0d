import type { Logger } from 'pino';
import {
  SnapshotAssembly, assertNever, parseChangesReply, parseSnapshotReply, replayBreak, type Change, type HelloMessage, type ServerMessage, type UsageMessage,
} from '@factsync/shared';
import type { LocalStore } from './local-store.js';
import type { Applier, OfferResult } from './applier.js';
import type { ServerClient } from './server-client.js';
import type { AppliedWaiters } from './applied-waiters.js';
import type { AgentMetrics } from './metrics.js';
import type { UsageTracker } from './usage-tracker.js';
import type { ApplyGate } from './apply-gate.js';

/**
 * Where the protocol stands on the current socket; changed only by `setState`.
 * offline → greeting (hello sent) → awaiting_snapshot | streaming → … → offline.
 * `sent` is the highest version this socket delivered: acks never run ahead of
 * it (the server refuses an ack of what it did not send on that session).
 */
export type EngineState =
  | { phase: 'offline' }
  | { phase: 'greeting' }
  | { phase: 'awaiting_snapshot' }
  | { phase: 'streaming'; sent: number };

/** What the engine needs of the socket; the Connection provides it. */
export interface Link {
  send(m: { type: 'ack'; version: number } | UsageMessage): boolean;
  restart(reason: string): void;
  markHealthy(): void;
  readonly serverUrl: URL;
}

export interface SyncEngineDeps {
  env: string;
  agentId: string;
  /** A scoped agent's tenants: its hello asks for their share. */
  tenants?: readonly string[] | undefined;
  store: LocalStore;
  applier: Applier;
  client: ServerClient;
  waiters: AppliedWaiters;
  metrics: AgentMetrics;
  log: Logger;
  link: () => Link;
  /** Local state changed (persistence). */
  onDirty: () => void;
  usage?: UsageTracker;
  /** Applies wait here while a long read holds one version. */
  gate: ApplyGate;
}

/**
 * The agent's protocol engine: hello, welcome, snapshot or log catch-up, live
 * changes, the chain check of every applied version (invariant 9), repair of
 * gaps from the log, and coalesced cumulative acks (invariant 3).
 */
export class SyncEngine {
  private state: EngineState = { phase: 'offline' };
  /** Highest head the server has told us of, in the current epoch. */
  head = 0;
  ready = false;
  private bootHead = 0;
  /** The head the current session's welcome named: fresh once it is applied. */
  private sessionHead = Number.POSITIVE_INFINITY;
  private lastAck = 0;
  private ackScheduled = false;
  private repairing = false;
  private closed = false;
  /** A fork seen at this version: if the next session forks there again, start over from nothing. */
  private forkedAt = 0;
  private forkRepeat = false;
  /** The frames of a multi-frame snapshot received so far. */
  private readonly snapshot = new SnapshotAssembly();

  /**
   * The server's epoch as this agent last heard it (a welcome, a write's answer;
   * at start, the restored state's). A bare `at_least=V` means V of this epoch,
   * and a state of another epoch answers nothing for it (invariant 5).
   */
  serverEpoch: string | null;

  constructor(private readonly d: SyncEngineDeps) {
    this.serverEpoch = d.store.epoch;
  }

  /**
   * A write was answered in `epoch`. Another epoch than our state's means the
   * store lost its data under a session that has not noticed yet: resync now,
   * rather than when the server gets round to closing the socket.
   */
  heardEpoch(epoch: string): void {
    if (epoch === this.serverEpoch) return;
    this.serverEpoch = epoch;
    const { store } = this.d;
    if (store.epoch !== null && store.epoch !== epoch && this.state.phase !== 'offline') {
      this.d.log.error({ epoch: store.epoch, serverEpoch: epoch, applied: store.version }, 'a write was answered in another epoch: the store lost data; resyncing from a snapshot');
      this.d.link().restart('the server is in another epoch');
    }
  }

  /** Live on a session and caught up to the head its welcome named: what this agent answers is current. */
  get fresh(): boolean {
    return this.state.phase === 'streaming' && this.d.store.version >= this.sessionHead;
  }

  get phase(): EngineState['phase'] {
    return this.state.phase;
  }

  private setState(next: EngineState): void {
    if (next.phase !== this.state.phase) this.d.log.debug({ from: this.state.phase, to: next.phase }, 'sync state');
    this.state = next;
  }

  /** The hello of a new socket carries what is applied at this moment. */
  hello(): HelloMessage {
    const { store } = this.d;
    this.setState({ phase: 'greeting' });
    this.lastAck = 0;
    if (this.forkRepeat) {
      // The same fork twice: our state cannot be continued; ask for everything.
      this.forkRepeat = false;
      return { ...this.scope(), type: 'hello', env: this.d.env, agent_id: this.d.agentId, applied: 0, epoch: null, applied_id: null, ack: true };
    }
    return { ...this.scope(), type: 'hello', env: this.d.env, agent_id: this.d.agentId, applied: store.version, epoch: store.epoch, applied_id: store.lastId, ack: true };
  }

  private scope(): { tenants?: string[] } {
    return this.d.tenants ? { tenants: [...this.d.tenants] } : {};
  }

  disconnected(): void {
    // Frames of a snapshot the socket did not finish are worth nothing: the next session sends a whole one.
    this.snapshot.reset();
    this.setState({ phase: 'offline' });
    this.lastAck = 0;
  }

  onMessage(m: ServerMessage): void {
    const { store, applier, metrics, log } = this.d;
    switch (m.type) {
      case 'welcome': {
        // Versions of another epoch say nothing about this one: the head starts over with it.
        this.head = m.epoch !== store.epoch ? m.head : Math.max(this.head, m.head);
        if (m.epoch !== null) this.serverEpoch = m.epoch;
        if (!this.ready) this.bootHead = Math.max(this.bootHead, m.head);
        this.sessionHead = m.head;
        // The server says whether a snapshot follows; older servers: mirror their rule.
        const snapshotComing = m.snapshot ?? (m.epoch !== store.epoch || store.version > m.head);
        if (store.version > 0 && snapshotComing) {
          log.error({ applied: store.version, epoch: store.epoch, serverEpoch: m.epoch, head: m.head },
            'local state is from another epoch, ahead of the server, or from a history the server no longer has: the store lost data; resyncing from a snapshot');
        }
        if (snapshotComing) {
          applier.clearBuffer();
          this.setState({ phase: 'awaiting_snapshot' });
        } else this.setState({ phase: 'streaming', sent: store.version });
        this.d.link().markHealthy();
        if (m.max_payload !== undefined) this.d.usage?.setMaxFrameBytes(m.max_payload);
        this.afterApply({ kind: 'ok', applied: store.version, count: 0 });
        this.reportUsage(true);
        return;
      }
      case 'snapshot': {
        // Gathered and applied only once complete (`last`): the local state never holds part of one.
        const p = this.snapshot.add(m);
        if (!p) return;
        const broken = replayBreak(p);
        if (broken !== null) {
          log.error({ version: p.version, at: broken }, 'the changes sent with a snapshot do not continue it; resyncing');
          this.d.link().restart('snapshot replay does not follow its base');
          return;
        }
        this.setState({ phase: 'streaming', sent: p.at });
        this.head = Math.max(this.head, p.at);
        const end = metrics.applyDuration.startTimer({ kind: 'snapshot' });
        const r = applier.snapshot(p.version, p.epoch, p.facts, p.id, p.replay, p.count);
        end();
        if (r.kind === 'incomplete') {
          // The facts and their replay do not make the env the server counted: a fact was missed
          // (a scan under a resharding, say). The applier cleared it; ask for a whole snapshot again.
          metrics.historyForks.inc();
          log.error({ version: p.at, facts: r.got, expected: r.expected }, 'snapshot incomplete: its facts do not add up to the count the server sent; resyncing from a snapshot');
          this.d.onDirty();
          this.d.link().restart('incomplete snapshot');
          return;
        }
        log.info({ version: store.version, facts: p.facts.length, replayed: p.replay.length }, 'snapshot applied');
        this.d.onDirty();
        this.afterApply(r);
        return;
      }
      case 'changes': {
        const last = m.changes[m.changes.length - 1]!.version;
        if (this.state.phase === 'streaming') this.setState({ phase: 'streaming', sent: Math.max(this.state.sent, last) });
        this.head = Math.max(this.head, last);
        const end = metrics.applyDuration.startTimer({ kind: 'changes' });
        const r = applier.offer(m.changes as Change[]);
        end();
        this.afterApply(r);
        return;
      }
      case 'usage_ok':
        this.d.usage?.confirm(m.seq);
        return;
      case 'usage_refused': {
        const b = this.d.usage?.refuse(m.seq);
        metrics.usageRefused.inc();
        log.error({ seq: m.seq, code: m.error, message: m.message, users: b?.users.length ?? 0, month: b?.month }, 'server refused a usage report; dropped');
        return;
      }
      case 'error':
        log.warn({ code: m.error, message: m.message }, 'server closed the session with an error');
        return;
      default:
        assertNever(m, 'server message');
    }
  }

  /** Sends the user keys checked since the last report (after a reconnect, also what was never confirmed). */
  reportUsage(resend = false): void {
    if (!this.d.usage || this.state.phase === 'offline' || this.state.phase === 'greeting') return;
    const link = this.d.link();
    for (const b of this.d.usage.take(resend)) if (!link.send(b)) return;
  }

  private afterApply(r: OfferResult): void {
    const { store } = this.d;
    if (r.count > 0) this.d.onDirty();
    this.d.waiters.advance({ version: store.version, epoch: store.epoch });
    if (!this.ready && this.state.phase === 'streaming' && store.version >= this.bootHead) {
      this.ready = true;
      this.d.log.info({ applied: store.version }, 'bootstrapped; ready');
    }
    this.scheduleAck();
    if (r.kind === 'gap') void this.repair(r.before);
    else if (r.kind === 'forked') this.forked(r.at);
  }

  /** Invariant 9: what the server sends does not continue what we applied. Resync through a new session. */
  private forked(at: number): void {
    this.d.metrics.historyForks.inc();
    this.d.log.error({ applied: this.d.store.version, appliedId: this.d.store.lastId, at },
      'the server history does not follow what this agent applied: the store lost or rewrote versions; resyncing from a snapshot');
    this.forkRepeat = this.forkedAt === at;
    this.forkedAt = at;
    this.d.link().restart('history fork');
  }

  private scheduleAck(): void {
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    // Coalesce: a burst of frames in one tick is acked once, with the highest version.
    setImmediate(() => {
      this.ackScheduled = false;
      if (this.state.phase !== 'streaming') return;
      const v = Math.min(this.d.store.version, this.state.sent);
      if (v > this.lastAck && this.d.link().send({ type: 'ack', version: v })) this.lastAck = v;
    });
  }

  /** Missing versions behind a gap: read them over HTTP from the same replica; a snapshot if the log moved on. */
  private async repair(before: number): Promise<void> {
    if (this.repairing) return;
    this.repairing = true;
    const { store, applier, client, env, log } = this.d;
    log.warn({ applied: store.version, before }, 'gap detected; repairing from the change log');
    this.d.metrics.gaps.inc();
    try {
      while (!this.closed && applier.buffered > 0 && store.version < before) {
        const preferred = this.d.link().serverUrl;
        const share = this.d.tenants ? `&tenants=${encodeURIComponent(this.d.tenants.join(','))}` : '';
        const a = await client.request<unknown>('GET', `/v1/envs/${env}/changes?after=${store.version}&limit=1000${share}`, { preferred });
        if (a.status === 410 && this.d.tenants) {
          // The HTTP snapshot is of the whole env; a new session sends a snapshot of the share.
          this.d.link().restart('gap repair: the log moved on; resyncing the share through a new session');
          return;
        }
        if (a.status === 410) {
          const s = parseSnapshotReply((await client.call<unknown>('GET', `/v1/envs/${env}/snapshot`, { preferred })).body);
          if (!s.ok) {
            this.d.link().restart(`gap repair: ${s.error}; resuming through a new session`);
            return;
          }
          await this.d.gate.turn();
          this.afterApply(applier.snapshot(s.value.version, s.value.epoch, s.value.facts, s.value.id ?? null));
          continue;
        }
        const page = a.status === 200 ? parseChangesReply(a.body) : undefined;
        if (page && !page.ok) {
          this.d.link().restart(`gap repair: ${page.error}; resuming through a new session`);
          return;
        }
        if (!page || page.value.epoch !== store.epoch || page.value.changes.length === 0) {
          this.d.link().restart(`gap repair got status ${a.status}; resuming through a new session`);
          return;
        }
        // Not while a read that yields holds one version (apply-gate.ts).
        await this.d.gate.turn();
        this.afterApply(applier.offer(page.value.changes));
      }
    } catch (e) {
      this.d.link().restart(`gap repair failed: ${(e as Error).message}`);
    } finally {
      this.repairing = false;
    }
  }

  close(): void {
    this.closed = true;
    this.setState({ phase: 'offline' });
  }
}
