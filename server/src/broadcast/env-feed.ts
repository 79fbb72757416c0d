import type { Logger } from 'pino';
import { idOfChangeJson, rawFollowsChain, type Change } from '@factsync/shared';
import type { EnvEvent, EnvHead, FactLog, RawChange } from '../store/fact-store.js';

/** One frame's worth of consecutive versions, serialised and UTF-8 encoded once for every member. */
export interface ChangeBatch {
  first: number;
  last: number;
  changes: readonly RawChange[];
  frame: Buffer;
  /** Frames of this batch for scoped sessions, by scope key, built on first use (ws/shares.ts). */
  shares?: Map<string, { frame: string; lastId: string }>;
  /** The changes parsed, once for every scope that builds its share of this batch. */
  parsed?: readonly Change[];
}

export interface FeedMember {
  /** Consecutive versions known to this replica, in order; the member checks contiguity with what it sent. */
  deliver(batch: ChangeBatch): void;
  /** The replica's view jumped (log trimmed past it) or the store lost data: catch up or resync on your own. */
  resync(reason: 'behind' | 'store_reset'): void;
}

/** How many recent versions' chain ids a feed keeps for acks (far more than any agent is behind while live). */
const RECENT_IDS = 10_000;
/** A feed without doorbells for this long is idle, and healed only every IDLE_HEAL_MS. */
export const IDLE_AFTER_MS = 60_000;
export const IDLE_HEAL_MS = 30_000;

export const changesFrame = (changes: readonly RawChange[]): string =>
  `{"type":"changes","changes":[${changes.map((c) => c.json).join(',')}]}`;

/** The frame as UTF-8 bytes: encoded once here instead of once per socket by ws (a profile showed it). */
export const changesFrameBytes = (changes: readonly RawChange[]): Buffer => Buffer.from(changesFrame(changes), 'utf8');

/**
 * The ordered stream of one env on this replica. Pub/sub is only a doorbell
 * (invariant 6): a doorbell that carries the next version is delivered as is;
 * a jump, or one without payload, is filled from the change log; `heal()`
 * (on a timer and after the subscription reconnects) catches a doorbell
 * that never rang.
 */
export class EnvFeed {
  /** Highest version handed to members, contiguous from where this feed started. */
  known: number;
  /** Chain id of `known` (invariant 9); null when unknown (data written before ids existed). */
  private knownId: string | null;
  /** Epoch of the versions in `known`; a doorbell or log page of another epoch means the store lost data. */
  private epoch: string | null;
  private target: number;
  private filling = false;
  private pending: RawChange[] = [];
  /**
   * Chain ids of the versions this feed handed out lately (invariant 9): a
   * session records an ack with the id of the history it acks. Kept once per
   * replica, not once per socket; bounded to RECENT_IDS versions.
   */
  private readonly recentIds = new Map<number, string>();
  private flushScheduled = false;
  private closed = false;

  constructor(
    readonly env: string,
    start: EnvHead,
    /** Owned by the broadcaster's entry for this env. */
    readonly members: ReadonlySet<FeedMember>,
    private readonly store: FactLog,
    private readonly pageSize: number,
    private readonly log: Logger,
    private readonly onGapFilled: (count: number) => void = () => undefined,
    private readonly onFork: () => void = () => undefined,
    /** Byte budget of one frame: reads and batches stay under it; one larger change goes alone. */
    private readonly frameBytes = 1024 * 1024,
  ) {
    this.known = start.version;
    this.knownId = start.version === 0 || start.id !== '' ? start.id : null;
    this.target = start.version;
    this.epoch = start.epoch;
  }

  /** When a doorbell last rang, and when the feed last compared itself with the store. */
  private lastEventAt = Date.now();
  private lastHealAt = 0;

  /**
   * Whether the periodic heal should check this feed now. Heal guards against a
   * doorbell that never rang; an env with recent doorbells is checked every
   * tick, an idle one every IDLE_HEAL_MS: the cost of healing follows the
   * active envs, not all the envs a replica serves (invariant 10).
   */
  healDue(now: number, intervalMs: number, idleAfterMs = IDLE_AFTER_MS, idleHealMs = IDLE_HEAL_MS): boolean {
    const idle = now - this.lastEventAt > idleAfterMs;
    return now - this.lastHealAt >= (idle ? Math.max(intervalMs, idleHealMs) : intervalMs);
  }

  onEvent(ev: EnvEvent): void {
    if (this.closed) return;
    this.lastEventAt = Date.now();
    if (this.epoch === null) this.epoch = ev.epoch; // the env got its first version after this feed opened
    if (ev.epoch !== this.epoch) {
      void this.heal().catch(() => undefined);
      return;
    }
    if (ev.version <= this.known) return;
    // Changes that travel inline (one, or a group commit's, in order) and continue what we have.
    const inline = ev.changes ?? (ev.change !== undefined ? [ev.change] : undefined);
    if (!this.filling && inline !== undefined && ev.version - inline.length === this.known) {
      let v = this.known;
      for (const c of inline) {
        if (!this.follows(++v, c)) return this.forked(v);
        this.known = v;
        this.knownId = idOfChangeJson(c);
        this.pending.push({ version: v, json: c });
      }
      this.scheduleFlush();
      return;
    }
    this.target = Math.max(this.target, ev.version);
    void this.fill();
  }

  /** Compare with the store's head; fill anything a lost doorbell hid. */
  async heal(): Promise<void> {
    if (this.closed) return;
    this.lastHealAt = Date.now();
    // Compare with what was known *before* asking: doorbells that arrive on the
    // subscriber connection while the head read is in flight are newer than the
    // answer, and must not look like versions going backwards.
    const knownBefore = this.known;
    const idBefore = this.knownId;
    const head = await this.store.head(this.env);
    if (this.closed) return;
    if (head.version < knownBefore || (this.epoch !== null && head.epoch !== this.epoch)) return this.reset(head);
    // Same version, other id: the store rewrote history under us (failover to a replica that missed writes).
    if (head.version === knownBefore && this.known === knownBefore && idBefore !== null && head.id !== '' && head.id !== idBefore) {
      return this.forked(head.version, head);
    }
    if (head.version > this.target) this.target = head.version;
    await this.fill();
  }

  private async fill(): Promise<void> {
    if (this.filling) return;
    this.filling = true;
    let filled = 0;
    try {
      while (!this.closed && this.known < this.target) {
        const page = await this.store.changes(this.env, this.known, this.pageSize, this.frameBytes);
        if (this.epoch !== null && page.epoch !== this.epoch) {
          this.reset({ version: page.head, epoch: page.epoch, id: '' });
          break;
        }
        if (page.truncated) {
          this.log.warn({ env: this.env, known: this.known, head: page.head }, 'log no longer reaches this replica; members resync');
          this.known = page.head;
          this.pending = [];
          for (const m of this.members) m.resync('behind');
          break;
        }
        if (page.changes.length === 0) break;
        let forkedAt = 0;
        for (const c of page.changes) {
          if (c.version !== this.known + 1) continue;
          if (!this.follows(c.version, c.json)) {
            forkedAt = c.version;
            break;
          }
          this.pending.push(c);
          this.known = c.version;
          this.knownId = idOfChangeJson(c.json);
          filled++;
        }
        if (forkedAt > 0) {
          this.flush();
          this.forked(forkedAt);
          break;
        }
        this.flush();
      }
    } catch (e) {
      this.log.warn({ env: this.env, err: (e as Error).message }, 'filling a gap failed; will retry on heal');
    } finally {
      this.filling = false;
      if (filled > 0) this.onGapFilled(filled);
    }
  }

  /** Invariant 9 on the server side: does this stored change follow the last one we handed out? */
  private follows(version: number, json: string): boolean {
    if (this.knownId === null) return true;
    if (idOfChangeJson(json) === null) return true; // written before ids existed: nothing to check
    return rawFollowsChain(this.knownId, version, json);
  }

  /** The history this feed handed out was rewritten: every member resyncs, and the agents' chain checks force snapshots. */
  private forked(at: number, head?: EnvHead): void {
    this.log.error({ env: this.env, known: this.known, at },
      'the store history was rewritten (a version does not follow the chain): the store lost or replaced versions; agents of this env resync');
    this.onFork();
    this.known = head?.version ?? at - 1;
    this.knownId = head?.id ?? null;
    this.target = this.known;
    this.pending = [];
    this.recentIds.clear();
    for (const m of this.members) m.resync('store_reset');
    if (!head) void this.heal().catch(() => undefined);
  }

  /** The store lost data (invariant 5): our version numbers mean nothing now, so every member resyncs from scratch. */
  private reset(head: EnvHead): void {
    this.log.error({ env: this.env, known: this.known, epoch: this.epoch, head: head.version, newEpoch: head.epoch },
      'the store lost data (head went backwards or the epoch changed); every agent of this env resyncs from a snapshot');
    this.known = head.version;
    this.knownId = head.version === 0 || head.id !== '' ? head.id : null;
    this.target = head.version;
    this.epoch = head.epoch;
    this.pending = [];
    this.recentIds.clear();
    for (const m of this.members) m.resync('store_reset');
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // One macrotask of coalescing: doorbells that arrive together leave in one frame.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const changes = this.pending;
    this.pending = [];
    for (const c of changes) this.recentIds.set(c.version, idOfChangeJson(c.json) ?? '');
    if (this.recentIds.size > RECENT_IDS) {
      for (const v of this.recentIds.keys()) {
        this.recentIds.delete(v);
        if (this.recentIds.size <= RECENT_IDS) break;
      }
    }
    // Split into frames within the byte budget (one oversized change alone), delivered in order.
    let start = 0;
    let bytes = 0;
    for (let i = 0; i <= changes.length; i++) {
      const size = i < changes.length ? changes[i]!.json.length : 0;
      if (i === changes.length || (i > start && bytes + size > this.frameBytes)) {
        const part = start === 0 && i === changes.length ? changes : changes.slice(start, i);
        const batch: ChangeBatch = { first: part[0]!.version, last: part[part.length - 1]!.version, changes: part, frame: changesFrameBytes(part) };
        for (const m of this.members) m.deliver(batch);
        start = i;
        bytes = 0;
      }
      bytes += size;
    }
  }

  /** The chain id of `version` if this feed handed it out lately. */
  idOf(version: number): string | undefined {
    return this.recentIds.get(version);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    this.pending = [];
  }
}
