import { isFactKey, usageBatchLength, usageMonth, type UsageMessage } from '@factsync/shared';

/** The frame budget until a welcome names the server's (WS_MAX_PAYLOAD_BYTES' default). */
export const DEFAULT_MAX_PAYLOAD = 64 * 1024;

/** Keys remembered per month to report each once; past it the set restarts (the server deduplicates anyway). */
export const MAX_REMEMBERED_USERS = 1_000_000;
/** Batches reported but not yet confirmed; past it new keys wait until the server answers. */
const MAX_UNCONFIRMED = 64;

/**
 * Monthly active users, agent side (docs/api.md, "Decisions on the agent": usage): the distinct user
 * keys this agent checked, per UTC month, reported to the server in batches
 * over the websocket. A batch is kept until the server confirms it stored it
 * (`usage_ok`), and sent again on the next session otherwise: a key checked is
 * counted even if the socket dies mid-report. The server's set makes resends
 * and the same user on many agents count once.
 */
export class UsageTracker {
  private month = '';
  private seen = new Set<string>();
  private pending: string[] = [];
  /** The current month's bounds in ms: a check compares two numbers instead of formatting a date. */
  private monthStart = 0;
  private monthEnd = 0;
  private readonly unconfirmed = new Map<number, UsageMessage>();
  private seq = 0;
  /** The server's inbound frame limit, from its last welcome: every batch is cut to fit it. */
  private maxFrameBytes = DEFAULT_MAX_PAYLOAD;

  constructor(private readonly now: () => number = Date.now) {}

  /** Called on every check: a set lookup, and a new month only when the clock crosses one. */
  record(userKey: string): void {
    const t = this.now();
    if (t >= this.monthEnd || t < this.monthStart) this.startMonth(t);
    // A key that is no key cannot be reported (the server would refuse the batch); checks refuse such keys already.
    if (this.seen.has(userKey) || !isFactKey(userKey)) return;
    if (this.seen.size >= MAX_REMEMBERED_USERS) this.seen = new Set();
    this.seen.add(userKey);
    this.pending.push(userKey);
  }

  /** Pending keys belong to the month they were checked in: sealed before the month changes. */
  private startMonth(t: number): void {
    const month = usageMonth(t);
    const d = new Date(t);
    this.monthStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    this.monthEnd = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    if (month === this.month) return;
    while (this.pending.length > 0) if (!this.seal()) break;
    this.month = month;
    this.seen = new Set();
  }

  /** A welcome named the server's inbound limit; batches sealed for a larger one are cut again on resend. */
  setMaxFrameBytes(bytes: number): void {
    this.maxFrameBytes = bytes;
  }

  /** Batches to send now: everything unconfirmed after a reconnect (`resend`), else what is new. */
  take(resend: boolean): UsageMessage[] {
    const out: UsageMessage[] = [];
    if (resend) {
      for (const b of [...this.unconfirmed.values()]) {
        if (usageBatchLength(b.users, 0, this.maxFrameBytes) === b.users.length) out.push(b);
        else out.push(...this.recut(b));
      }
    }
    while (this.pending.length > 0 && this.unconfirmed.size < MAX_UNCONFIRMED) {
      const b = this.seal();
      if (!b) break;
      out.push(b);
    }
    return out;
  }

  confirm(seq: number): void {
    this.unconfirmed.delete(seq);
  }

  /** The server will never store this batch: it is dropped, not re-sent on every session. */
  refuse(seq: number): UsageMessage | undefined {
    const b = this.unconfirmed.get(seq);
    this.unconfirmed.delete(seq);
    return b;
  }

  /** A batch too big for the current limit becomes several, with new numbers. */
  private recut(b: UsageMessage): UsageMessage[] {
    this.unconfirmed.delete(b.seq);
    const out: UsageMessage[] = [];
    for (let at = 0; at < b.users.length;) {
      const n = usageBatchLength(b.users, at, this.maxFrameBytes);
      if (n === 0) break;
      out.push(this.remember(b.month, b.users.slice(at, at + n)));
      at += n;
    }
    return out;
  }

  get waiting(): number {
    return this.pending.length + [...this.unconfirmed.values()].reduce((n, b) => n + b.users.length, 0);
  }

  /** Moves as many pending keys as fit one frame (at most MAX_USAGE_BATCH) into an unconfirmed batch. */
  private seal(): UsageMessage | undefined {
    if (this.pending.length === 0) return undefined;
    const n = usageBatchLength(this.pending, 0, this.maxFrameBytes);
    // No key fits even alone (a server limit below any key): keep them until a welcome names a larger one.
    if (n === 0) return undefined;
    const users = this.pending.length <= n ? this.pending : this.pending.slice(0, n);
    this.pending = this.pending.length <= n ? [] : this.pending.slice(n);
    return this.remember(this.month, users);
  }

  private remember(month: string, users: string[]): UsageMessage {
    const b: UsageMessage = { type: 'usage', seq: ++this.seq, month, users };
    this.unconfirmed.set(b.seq, b);
    return b;
  }
}
