import type { WebSocket } from 'ws';
import type { EnvDirectory } from '../env-directory.js';
import type { Logger } from 'pino';
import { nanoid } from 'nanoid';
import {
  ErrorCodes, FactsyncError, assertNever, closeReason, errorFrame, idOfChangeJson, parseClientMessage, scopeOf, type ErrorCode, type HelloMessage, type UsageMessage, type WelcomeMessage,
} from '@factsync/shared';
import { permit, permitAgentId, permitScope, type Principal } from '../auth.js';
import type { FactLog, Resume, ResumeVerdict, SessionRegistry, UsageLedger } from '../store/fact-store.js';
import type { Broadcaster } from '../broadcast/broadcaster.js';
import { changesFrame, type ChangeBatch, type EnvFeed, type FeedMember } from '../broadcast/env-feed.js';
import type { ControlPlane } from '../control/control-plane.js';
import type { EnvControl } from '../control/env-control.js';
import type { SnapshotReads, SnapshotSink } from './snapshot-reads.js';
import type { ServerMetrics } from '../metrics.js';
import { ShareStream, logOnly } from './shares.js';
import { UsageIntake } from './usage-intake.js';

export interface SessionDeps {
  store: FactLog & SessionRegistry & UsageLedger;
  broadcaster: Broadcaster;
  control: ControlPlane;
  metrics: ServerMetrics;
  log: Logger;
  replicaId: string;
  leaseMs: number;
  pageSize: number;
  /** Byte budget of one frame (WS_MAX_FRAME_BYTES). */
  frameBytes: number;
  snapshots: SnapshotReads;
  maxBufferedBytes: number;
  /** The largest frame a client may send (WS_MAX_PAYLOAD_BYTES), announced in welcome. */
  maxPayloadBytes: number;
  /** A socket that says no hello within this is closed (it would hold a descriptor for nothing). */
  helloTimeoutMs: number;
  envs: EnvDirectory;
  onClosed: (s: Session) => void;
}

const MAX_CATCH_UP_IDS = 10_000;

/** Verdicts that mean the agent's state cannot be trusted: the store lost or rewrote what it had applied. */
const DIVERGED: ReadonlySet<ResumeVerdict> = new Set(['other_epoch', 'ahead', 'forked']);

/**
 * A session's life: `awaiting_hello` → `opening` (hello read, the store registering it) → `syncing`
 * (welcome sent: snapshot or log pages) ⇄ `live` (batches from the feed) → `closed`, from any state.
 */
type State = 'awaiting_hello' | 'opening' | 'syncing' | 'live' | 'closed';
const NEXT: Readonly<Record<State, readonly State[]>> = {
  awaiting_hello: ['opening', 'closed'],
  opening: ['syncing', 'closed'],
  syncing: ['syncing', 'live', 'closed'],
  live: ['syncing', 'closed'],
  closed: [],
};

/**
 * One websocket. After hello it sends either a snapshot or the missed changes,
 * then live batches from the env feed. `sent` is the last version written to
 * the socket; anything that would not continue it exactly (a gap) sends the
 * session back to read the log, so the agent never sees a hole from us.
 */
/** setTimeout's longest delay (about 24.8 days); a later expiry is waited for in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Session implements FeedMember {
  private state: State = 'awaiting_hello';
  readonly conn = nanoid(10);
  env = '';
  agentId = '';
  acking = false;
  sent = 0;
  acked = 0;
  isAlive = true;
  /** The epoch announced in welcome; a log page from another epoch ends the session. */
  private epoch: string | null = null;
  /**
   * Chain ids of what catch-up sent (a snapshot, log pages) and is not acked yet:
   * an ack is recorded with the id of the history it acks (invariant 9). Live
   * versions are looked up on the feed, which keeps them once for all sockets.
   */
  private readonly catchUpIds = new Map<number, string>();
  /** Usage reports of an acking session, once it is registered. */
  private usage: UsageIntake | undefined;
  readonly remoteAddress: string;
  private feed: EnvFeed | undefined;
  private control: EnvControl | undefined;
  private log: Logger;
  private expiryTimer: NodeJS.Timeout | undefined;
  private helloTimer: NodeJS.Timeout | undefined;
  /** A subscription with `types`: only its share of each version is sent. */
  private share: ShareStream | undefined;

  constructor(private readonly socket: WebSocket, private readonly principal: Principal, private readonly deps: SessionDeps) {
    this.log = deps.log.child({ conn: this.conn });
    const raw = (socket as unknown as { _socket?: { remoteAddress?: string; remotePort?: number } })._socket;
    this.remoteAddress = raw?.remoteAddress ? `${raw.remoteAddress}:${raw.remotePort ?? ''}` : 'unknown';
    socket.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    socket.on('pong', () => (this.isAlive = true));
    // 1000 is the agent's own goodbye: it is gone on purpose and no longer awaited (invariant 8).
    socket.on('close', (code) => this.cleanup(code === 1000));
    socket.on('error', (e) => this.log.debug({ err: e.message }, 'socket error'));
    if (principal.expiresAtMs !== undefined) this.expireAt(principal.expiresAtMs);
    this.helloTimer = setTimeout(() => {
      if (this.state === 'awaiting_hello') this.fail('invalid_request', `no hello within ${deps.helloTimeoutMs} ms of connecting; send {"type":"hello",...} first`);
    }, deps.helloTimeoutMs);
    this.helloTimer.unref();
  }

  /** A session lives no longer than its token (JWT exp): then 4401 token_expired, and the agent comes back with a fresh one. */
  private expireAt(ms: number): void {
    const wait = ms - Date.now();
    if (wait > MAX_TIMER_MS) {
      this.expiryTimer = setTimeout(() => this.expireAt(ms), MAX_TIMER_MS);
    } else {
      this.expiryTimer = setTimeout(() => this.fail('token_expired', `token expired at ${new Date(ms).toISOString()}; reconnect with a fresh token`), Math.max(0, wait));
    }
    this.expiryTimer.unref();
  }

  get isLive(): boolean {
    return this.state === 'live';
  }

  /** The store holds this session as its agent's (welcome was sent). */
  get isRegistered(): boolean {
    return this.state === 'syncing' || this.state === 'live';
  }

  /** The one place the state changes; a transition the table does not allow is a bug. */
  private setState(next: State): void {
    if (!NEXT[this.state].includes(next)) throw new Error(`session ${this.conn}: ${this.state} → ${next} is not a transition`);
    this.state = next;
  }

  private onFrame(data: unknown, isBinary: boolean): void {
    this.isAlive = true;
    if (isBinary) return this.fail('invalid_request', 'binary frames are not part of the protocol; send JSON text frames');
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data as Buffer[]).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    const msg = parseClientMessage(text);
    if (!msg.ok) {
      const { usageSeq, message } = msg.error;
      // A bad usage report is refused alone (the agent drops it); anything else ends the session.
      if (usageSeq !== undefined && this.usage) return this.usage.refuse(usageSeq, 'invalid_request', message);
      return this.fail('invalid_request', message);
    }
    switch (msg.value.type) {
      case 'hello':
        if (this.state !== 'awaiting_hello') return this.fail('invalid_request', 'hello was already received on this connection');
        clearTimeout(this.helloTimer);
        void this.onHello(msg.value).catch((e: unknown) => this.failWith(e));
        return;
      case 'ack':
        return this.onAck(msg.value.version);
      case 'usage':
        return this.onUsage(msg.value);
      default:
        return assertNever(msg.value, 'client message');
    }
  }

  private async onHello(said: HelloMessage): Promise<void> {
    // Invariant 7: `applied` is believed only with the id of the change at it. Without one it proves
    // nothing (any token could claim any version for any agent id): answered as a first start.
    const h: HelloMessage = said.applied > 0 && !said.applied_id ? { ...said, applied: 0, epoch: null, applied_id: null } : said;
    if (h !== said) this.log.warn({ agentId: said.agent_id, applied: said.applied }, 'hello claims a version without its applied_id; answered as a first start (snapshot)');
    this.acking = h.ack !== false;
    permit(this.principal, h.env, this.acking ? 'ack' : 'subscribe');
    permitAgentId(this.principal, h.agent_id);
    permitScope(this.principal, h.tenants, 'open a session');
    if (h.types && this.acking) throw new FactsyncError('invalid_request', 'types is for subscribers (ack: false): an acking agent applies every fact of its share; leave types out');
    const scope = scopeOf(h);
    if (scope) this.share = new ShareStream(scope);
    this.env = h.env;
    this.agentId = h.agent_id;
    this.log = this.log.child({ env: h.env, agentId: h.agent_id });
    this.setState('opening');
    await this.deps.envs.require(h.env, this.principal.envs);
    if (this.isClosed()) return;
    const control = this.acking ? this.deps.control.acquire(h.env) : undefined;
    this.control = control?.control;
    this.feed = await this.deps.broadcaster.join(h.env, this);
    if (control) await control.ready;
    if (this.isClosed()) return;
    const resume = { applied: h.applied, epoch: h.epoch ?? null, appliedId: h.applied_id ?? null };
    let head: Resume;
    if (this.acking) {
      const opened = await this.deps.store.openSession(h.env, {
        id: h.agent_id, session: this.conn, replica: this.deps.replicaId, leaseMs: this.deps.leaseMs, addr: this.remoteAddress, resume,
      });
      head = opened;
      if (opened.replaced) {
        this.log.warn({ agentId: h.agent_id, newAddress: this.remoteAddress, oldAddress: opened.replaced.addr, oldReplica: opened.replaced.replica },
          'a second session with this agent id replaced the older one: two agents share this AGENT_ID, or an old instance is still connected');
      }
      if (this.isClosed()) {
        void this.deps.store.endSession(h.env, h.agent_id, this.conn, false, this.deps.leaseMs).catch(() => undefined);
        return;
      }
      control!.control.opened(h.agent_id, this.conn, opened.since, opened.applied);
    } else {
      head = await this.deps.store.resume(h.env, resume);
    }
    if (this.isClosed()) return;
    // undefined: a snapshot follows (of the session's share, if it has one).
    const resumeAt = this.share
      ? await this.share.start(this.deps.store, h.env, h, head.verdict, this.acking, this.deps.frameBytes)
      : head.verdict === 'resume' ? h.applied : undefined;
    if (this.isClosed()) return;
    this.epoch = head.epoch;
    this.setState('syncing');
    if (this.acking) this.usage = new UsageIntake({ env: h.env, ledger: this.deps.store, metrics: this.deps.metrics, log: this.log, send: (f) => this.send(f) });
    this.send(JSON.stringify({ type: 'welcome', head: head.version, epoch: head.epoch, snapshot: resumeAt === undefined, max_payload: this.deps.maxPayloadBytes } satisfies WelcomeMessage));

    if (DIVERGED.has(head.verdict)) {
      // Invariants 5 and 9: version numbers from another epoch or another history mean nothing here.
      this.deps.metrics.historyForks.inc({ env: h.env, where: 'hello' });
      this.log.error({ verdict: head.verdict, agentEpoch: h.epoch ?? null, epoch: head.epoch, applied: h.applied, appliedId: h.applied_id ?? null, head: head.version },
        'agent state is from another epoch, ahead of the store, or from a history the store no longer has: the store lost data; resyncing agent from a snapshot');
    }
    if (resumeAt !== undefined) {
      this.sent = resumeAt;
    } else {
      await this.sendSnapshot();
    }
    await this.catchUp();
    this.log.info({ applied: h.applied, sent: this.sent, verdict: head.verdict, acking: this.acking }, 'agent session ready');
  }

  /** A newer hello with the same agent id took over (invariant 8): only its acks count from now on. */
  replaced(): void {
    // Drop it from this replica's view before the close, so it does not linger there as an unclean end would.
    this.control?.lost(this.agentId, this.conn);
    this.deps.metrics.replacedSessions.inc({ env: this.env });
    this.fail('agent_replaced', `another session with agent id "${this.agentId}" connected to env "${this.env}"; two agents share this id, or this is an old instance`);
  }

  /** Read the log from `sent` until this session has everything the feed has seen, then go live. */
  private async catchUp(): Promise<void> {
    if (this.isClosed()) return;
    this.setState('syncing');
    for (;;) {
      if (this.isClosed() || !this.feed) return;
      const target = this.feed.known;
      if (this.sent >= target) {
        this.setState('live');
        return;
      }
      // One page is one frame: bounded in bytes, so a history of huge changes never builds one huge string.
      const page = await this.deps.store.changes(this.env, this.sent, this.deps.pageSize, this.deps.frameBytes);
      if (this.isClosed()) return;
      // A subscriber welcomed to an env that did not exist yet (no epoch) adopts the epoch its first write created.
      if (this.epoch === null && this.sent === 0) this.epoch = page.epoch;
      if (page.epoch !== this.epoch) return this.resync('store_reset');
      if (page.truncated) {
        if (this.share && !this.acking) throw logOnly(this.env, `the log no longer holds version ${this.sent + 1}`);
        await this.sendSnapshot();
        continue;
      }
      const fresh = page.changes.filter((c) => c.version > this.sent);
      if (fresh.length === 0) {
        // The feed knows a version the log does not show yet (cannot happen with one store); retry via heal.
        this.setState('live');
        return;
      }
      await this.sendFlushed(this.share ? this.share.frameOf(fresh) : changesFrame(fresh));
      this.noteCatchUp(fresh);
      this.sent = fresh[fresh.length - 1]!.version;
      this.deps.metrics.resyncs.inc({ env: this.env, source: 'log' });
    }
  }

  private async sendSnapshot(): Promise<void> {
    // Streamed in steps of a scan, shared with the sessions that ask for this env at the same
    // time, at most MAX_SNAPSHOT_STREAMS at once per replica (invariant 10).
    const isClosed = (): boolean => this.isClosed();
    const sink: SnapshotSink = { send: (frame) => this.sendFlushed(frame), get gone() { return isClosed(); } };
    const sent = await this.deps.snapshots.stream(this.env, sink, this.share?.scope);
    if (!sent || this.isClosed()) return;
    this.share?.after(sent.id);
    this.epoch = sent.epoch;
    this.sent = sent.version;
    if (this.acking) this.catchUpIds.set(sent.version, sent.id);
    this.deps.metrics.resyncs.inc({ env: this.env, source: 'snapshot' });
    this.log.info({ version: sent.version, facts: sent.facts, replayed: sent.replayed }, 'snapshot sent');
  }

  deliver(batch: ChangeBatch): void {
    if (this.state !== 'live' || batch.last <= this.sent) return;
    if (batch.first === this.sent + 1) {
      this.send(this.share ? this.share.frameOfBatch(batch) : batch.frame);
      this.sent = batch.last;
    } else if (batch.first <= this.sent) {
      const rest = batch.changes.filter((c) => c.version > this.sent);
      // A tail of a batch already within the frame budget.
      this.send(this.share ? this.share.frameOf(rest) : changesFrame(rest));
      this.sent = batch.last;
    } else {
      void this.catchUp().catch((e: unknown) => this.failWith(e));
    }
  }

  /** Bounded: past MAX_CATCH_UP_IDS unacked versions, acks are recorded without an id (counted, not checked). */
  private noteCatchUp(changes: readonly { version: number; json: string }[]): void {
    if (!this.acking) return;
    for (const c of changes) {
      if (this.catchUpIds.size >= MAX_CATCH_UP_IDS) return;
      this.catchUpIds.set(c.version, idOfChangeJson(c.json) ?? '');
    }
  }

  resync(reason: 'behind' | 'store_reset'): void {
    if (reason === 'store_reset') {
      // Our versions are meaningless now; the agent reconnects and its epoch check forces a snapshot.
      this.close(1012, 'store lost data; reconnect to resync');
      return;
    }
    if (this.state === 'live') void this.catchUp().catch((e: unknown) => this.failWith(e));
  }

  /** User keys the agent checked (MAU): acking agents only, after hello (usage-intake.ts). */
  private onUsage(u: UsageMessage): void {
    if (!this.usage) return this.fail(this.isRegistered ? 'forbidden' : 'invalid_request', this.isRegistered ? 'usage is reported by acking agents only' : 'send hello before usage');
    const tooMany = this.usage.take(u);
    if (tooMany) this.fail('invalid_request', tooMany);
  }

  private onAck(version: number): void {
    if (this.state === 'awaiting_hello') return this.fail('invalid_request', 'send hello before ack');
    if (!this.acking) return; // subscribers' acks never count; ignore rather than fail a harmless client
    if (version > this.sent) {
      return this.fail('invalid_request', `ack ${version} is ahead of the last version sent on this connection (${this.sent})`);
    }
    if (version <= this.acked) return;
    this.acked = version;
    const chainId = this.catchUpIds.get(version) ?? this.feed?.idOf(version) ?? '';
    if (this.catchUpIds.size > 0) for (const v of this.catchUpIds.keys()) if (v <= version) this.catchUpIds.delete(v);
    this.deps.metrics.acks.inc({ env: this.env });
    this.control?.acked(this.agentId, this.conn, version, chainId);
  }

  /**
   * Catch-up frames (a snapshot, log pages) wait until the previous one was
   * handed to the kernel instead of piling up: a 100 MB snapshot must not look
   * like a slow consumer. A slow link may take minutes for it, which is fine
   * while bytes keep leaving; a reader that takes nothing for a third of a
   * lease is cut.
   */
  private sendFlushed(frame: string | Buffer): Promise<void> {
    if (this.isClosed()) return Promise.resolve();
    return new Promise((resolve) => {
      let lastBuffered = Number.POSITIVE_INFINITY;
      const watch = setInterval(() => {
        const now = this.socket.bufferedAmount;
        if (now < lastBuffered) {
          lastBuffered = now;
          return;
        }
        clearInterval(watch);
        this.cutOff('catch-up frame not being read');
        resolve();
      }, Math.max(100, Math.floor(this.deps.leaseMs / 3)));
      this.socket.send(frame, { binary: false }, () => {
        clearInterval(watch);
        resolve();
      });
    });
  }

  /** Text frames only; a Buffer must hold UTF-8 JSON (it is sent as text, not binary). */
  private send(frame: string | Buffer): void {
    if (this.isClosed()) return;
    if (this.socket.bufferedAmount > this.deps.maxBufferedBytes) return this.cutOff('slow consumer');
    this.socket.send(frame, { binary: false });
  }

  ping(): void {
    if (!this.isAlive) {
      this.log.info('no pong; terminating');
      this.socket.terminate();
      return;
    }
    this.isAlive = false;
    this.socket.ping();
  }

  private failWith(e: unknown): void {
    if (e instanceof FactsyncError) return this.fail(e.code, e.message);
    this.log.error({ err: e }, 'session failed');
    this.fail('internal', 'internal error; reconnect');
  }

  fail(code: ErrorCode, message: string): void {
    if (this.isClosed()) return;
    this.log.info({ code, message }, 'closing session with error');
    this.deps.metrics.rejected.inc({ code });
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(errorFrame(code, message));
    this.close(ErrorCodes[code].close, closeReason(message));
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.cleanup();
    try {
      this.socket.close(code, reason);
    } catch {
      this.socket.terminate();
    }
  }

  /**
   * Invariant 7: a reader that does not keep up is cut off and resumes from its
   * ack. Terminate rather than close: a close frame would queue behind the bytes
   * it is not reading.
   */
  private cutOff(why: string): void {
    this.log.warn({ buffered: this.socket.bufferedAmount, sent: this.sent }, `${why}; cutting off`);
    this.deps.metrics.slowConsumers.inc();
    this.cleanup();
    this.socket.terminate();
  }

  /** Drop the TCP connection without a close frame, as a network failure would. */
  terminate(): void {
    this.socket.terminate();
  }

  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private cleanup(graceful = false): void {
    if (this.state === 'closed') return;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    if (this.helloTimer) clearTimeout(this.helloTimer);
    const wasRegistered = this.env !== '';
    this.setState('closed');
    if (wasRegistered) {
      this.deps.broadcaster.leave(this.env, this);
      if (this.acking) {
        this.control?.ended(this.agentId, this.conn, graceful);
        this.deps.control.maybeRelease(this.env);
        this.deps.store.endSession(this.env, this.agentId, this.conn, graceful, this.deps.leaseMs).catch((e: Error) =>
          this.log.warn({ err: e.message }, 'could not record the end of the session; the lease will expire'));
      }
    }
    this.deps.onClosed(this);
  }
}

