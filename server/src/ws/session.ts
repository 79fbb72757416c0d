import type { WebSocket } from 'ws';
import type { Logger } from 'pino';
import { nanoid } from 'nanoid';
import {
  ErrorCodes, FactsyncError, assertNever, errorFrame, parseClientMessage, type ErrorCode, type HelloMessage,
} from '@factsync/shared';
import { permit, permitAgentId, type Principal } from '../auth.js';
import type { FactStore } from '../store/fact-store.js';
import type { Broadcaster } from '../broadcast/broadcaster.js';
import { changesFrame, type ChangeBatch, type EnvFeed, type FeedMember } from '../broadcast/env-feed.js';
import type { AckBatcher } from '../acks/ack-batcher.js';
import { snapshotFrame } from './frames.js';
import type { ServerMetrics } from '../metrics.js';

export interface SessionDeps {
  store: FactStore;
  broadcaster: Broadcaster;
  acks: AckBatcher;
  metrics: ServerMetrics;
  log: Logger;
  replicaId: string;
  leaseMs: number;
  pageSize: number;
  maxBufferedBytes: number;
  onClosed: (s: Session) => void;
}

type State = 'awaiting_hello' | 'syncing' | 'live' | 'closed';

/**
 * One websocket. After hello it sends either a snapshot or the missed changes,
 * then live batches from the env feed. `sent` is the last version written to
 * the socket; anything that would not continue it exactly (a gap) sends the
 * session back to read the log, so the agent never sees a hole from us.
 */
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
  private feed: EnvFeed | undefined;
  private log: Logger;

  constructor(private readonly socket: WebSocket, private readonly principal: Principal, private readonly deps: SessionDeps) {
    this.log = deps.log.child({ conn: this.conn });
    socket.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    socket.on('pong', () => (this.isAlive = true));
    socket.on('close', () => this.cleanup());
    socket.on('error', (e) => this.log.debug({ err: e.message }, 'socket error'));
  }

  get isLive(): boolean {
    return this.state === 'live';
  }

  private onFrame(data: unknown, isBinary: boolean): void {
    this.isAlive = true;
    if (isBinary) return this.fail('invalid_request', 'binary frames are not part of the protocol; send JSON text frames');
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data as Buffer[]).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    const msg = parseClientMessage(text);
    if (!msg.ok) return this.fail('invalid_request', msg.error);
    switch (msg.value.type) {
      case 'hello':
        if (this.state !== 'awaiting_hello') return this.fail('invalid_request', 'hello was already received on this connection');
        void this.onHello(msg.value).catch((e: unknown) => this.failWith(e));
        return;
      case 'ack':
        return this.onAck(msg.value.version);
      default:
        return assertNever(msg.value, 'client message');
    }
  }

  private async onHello(h: HelloMessage): Promise<void> {
    this.acking = h.ack !== false;
    permit(this.principal, h.env, this.acking ? 'ack' : 'subscribe');
    permitAgentId(this.principal, h.agent_id);
    this.env = h.env;
    this.agentId = h.agent_id;
    this.log = this.log.child({ env: h.env, agentId: h.agent_id });
    this.state = 'syncing';
    this.feed = await this.deps.broadcaster.join(h.env, this);
    if (this.isClosed()) return;
    const head = this.acking
      ? await this.deps.store.connectAgent(h.env, { id: h.agent_id, conn: this.conn, replica: this.deps.replicaId, leaseMs: this.deps.leaseMs })
      : await this.deps.store.ensureEpoch(h.env);
    if (this.isClosed()) return;
    this.epoch = head.epoch;
    this.send(JSON.stringify({ type: 'welcome', head: head.version, epoch: head.epoch }));

    const epochDiffers = h.epoch !== head.epoch;
    if (h.applied > 0 && (epochDiffers || h.applied > head.version)) {
      // Invariant 5: version numbers from another epoch mean nothing here.
      this.log.error({ agentEpoch: h.epoch ?? null, epoch: head.epoch, applied: h.applied, head: head.version },
        'agent state is from another epoch or ahead of the store: the store lost data; resyncing agent from a snapshot');
    }
    // A first start has no epoch, so it differs. An agent at 0 of this very epoch just reads the log.
    if (epochDiffers || h.applied > head.version) await this.sendSnapshot();
    else this.sent = h.applied;
    await this.catchUp();
    this.log.info({ applied: h.applied, sent: this.sent, acking: this.acking }, 'agent session ready');
  }

  /** Read the log from `sent` until this session has everything the feed has seen, then go live. */
  private async catchUp(): Promise<void> {
    this.state = 'syncing';
    for (;;) {
      if (this.isClosed() || !this.feed) return;
      const target = this.feed.known;
      if (this.sent >= target) {
        this.state = 'live';
        return;
      }
      const page = await this.deps.store.changes(this.env, this.sent, this.deps.pageSize);
      if (this.isClosed()) return;
      if (page.epoch !== this.epoch) return this.resync('store_reset');
      if (page.truncated) {
        await this.sendSnapshot();
        continue;
      }
      const fresh = page.changes.filter((c) => c.version > this.sent);
      if (fresh.length === 0) {
        // The feed knows a version the log does not show yet (cannot happen with one store); retry via heal.
        this.state = 'live';
        return;
      }
      await this.sendFlushed(changesFrame(fresh));
      this.sent = fresh[fresh.length - 1]!.version;
      this.deps.metrics.resyncs.inc({ env: this.env, source: 'log' });
    }
  }

  private async sendSnapshot(): Promise<void> {
    const snap = await this.deps.store.snapshot(this.env);
    if (this.isClosed()) return;
    this.epoch = snap.epoch;
    await this.sendFlushed(snapshotFrame(snap));
    this.sent = snap.version;
    this.deps.metrics.resyncs.inc({ env: this.env, source: 'snapshot' });
    this.log.info({ version: snap.version, facts: snap.facts.length }, 'snapshot sent');
  }

  deliver(batch: ChangeBatch): void {
    if (this.state !== 'live' || batch.last <= this.sent) return;
    if (batch.first === this.sent + 1) {
      this.send(batch.frame);
      this.sent = batch.last;
    } else if (batch.first <= this.sent) {
      const rest = batch.changes.filter((c) => c.version > this.sent);
      this.send(changesFrame(rest));
      this.sent = batch.last;
    } else {
      void this.catchUp().catch((e: unknown) => this.failWith(e));
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

  private onAck(version: number): void {
    if (this.state === 'awaiting_hello') return this.fail('invalid_request', 'send hello before ack');
    if (!this.acking) return; // subscribers' acks never count; ignore rather than fail a harmless client
    if (version > this.sent) {
      return this.fail('invalid_request', `ack ${version} is ahead of the last version sent on this connection (${this.sent})`);
    }
    if (version <= this.acked) return;
    this.acked = version;
    this.deps.metrics.acks.inc({ env: this.env });
    this.deps.acks.add(this.env, this.agentId, version);
  }

  /**
   * Catch-up frames (a snapshot, log pages) wait until the previous one was
   * handed to the kernel instead of piling up: a 100 MB snapshot must not look
   * like a slow consumer. A slow link may take minutes for it, which is fine
   * while bytes keep leaving; a reader that takes nothing for a third of a
   * lease is cut.
   */
  private sendFlushed(frame: string): Promise<void> {
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
    this.close(ErrorCodes[code].close, message.slice(0, 120));
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

  private cleanup(): void {
    if (this.state === 'closed') return;
    const wasRegistered = this.env !== '';
    this.state = 'closed';
    if (wasRegistered) {
      this.deps.broadcaster.leave(this.env, this);
      if (this.acking) {
        this.deps.store.disconnectAgent(this.env, this.agentId, this.conn).catch((e: Error) =>
          this.log.warn({ err: e.message }, 'could not record disconnect; the lease will expire'));
      }
    }
    this.deps.onClosed(this);
  }
}
