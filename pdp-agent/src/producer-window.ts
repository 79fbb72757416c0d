import { nanoid } from 'nanoid';
import { PRODUCER_WINDOW } from '@factsync/shared';

/**
 * This agent process as a producer of writes: consecutive sequence numbers
 * instead of an idempotency key per write, so the server's idempotency state
 * is one small window per agent process, not a key per write for a day. A
 * restart is a new producer (its old window expires on the server).
 *
 * The server remembers a producer's last PRODUCER_WINDOW numbers: numbers are
 * handed out only while the oldest unanswered write (which may still be
 * retried) stays inside that window.
 */
export class ProducerWindow {
  readonly id: string;
  private next = 1;
  private readonly open = new Set<number>();
  private waiters: (() => void)[] = [];

  constructor(agentId: string) {
    this.id = `${agentId}.${nanoid(10)}`;
  }

  /** How many consecutive numbers can be taken now (0 = wait for `whenFree`). */
  get room(): number {
    // Numbers are taken in ascending order and a Set iterates in insertion order: the first is the oldest.
    const oldest = this.open.values().next();
    return oldest.done ? PRODUCER_WINDOW : Math.max(0, PRODUCER_WINDOW - (this.next - oldest.value));
  }

  /** Takes `n` consecutive numbers (n <= room); returns the first. */
  take(n: number): number {
    const first = this.next;
    for (let i = 0; i < n; i++) this.open.add(this.next++);
    return first;
  }

  /** One number, once the window has room for it. */
  async takeOne(): Promise<number> {
    while (this.room === 0) await this.whenFree();
    return this.take(1);
  }

  release(first: number, n = 1): void {
    for (let i = 0; i < n; i++) this.open.delete(first + i);
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  whenFree(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
}
