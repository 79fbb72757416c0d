import { MAX_USAGE_BATCH, usageMonth, type UsageMessage } from '@factsync/shared';

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

  constructor(private readonly now: () => number = Date.now) {}

  /** Called on every check: a set lookup, and a new month only when the clock crosses one. */
  record(userKey: string): void {
    const t = this.now();
    if (t >= this.monthEnd || t < this.monthStart) this.startMonth(t);
    if (this.seen.has(userKey)) return;
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
    while (this.pending.length > 0) this.seal(MAX_USAGE_BATCH);
    this.month = month;
    this.seen = new Set();
  }

  /** Batches to send now: everything unconfirmed after a reconnect (`resend`), else what is new. */
  take(resend: boolean): UsageMessage[] {
    const out = resend ? [...this.unconfirmed.values()] : [];
    while (this.pending.length > 0 && this.unconfirmed.size < MAX_UNCONFIRMED) {
      const b = this.seal(MAX_USAGE_BATCH);
      if (b) out.push(b);
    }
    return out;
  }

  confirm(seq: number): void {
    this.unconfirmed.delete(seq);
  }

  get waiting(): number {
    return this.pending.length + [...this.unconfirmed.values()].reduce((n, b) => n + b.users.length, 0);
  }

  /** Moves up to `max` pending keys into an unconfirmed batch. */
  private seal(max: number): UsageMessage | undefined {
    if (this.pending.length === 0) return undefined;
    const users = this.pending.length <= max ? this.pending : this.pending.slice(0, max);
    this.pending = this.pending.length <= max ? [] : this.pending.slice(max);
    const b: UsageMessage = { type: 'usage', seq: ++this.seq, month: this.month, users };
    this.unconfirmed.set(b.seq, b);
    return b;
  }
}
