import type { Logger } from 'pino';
import type { FactStore } from '../store/fact-store.js';

/**
 * Coalesces acks: per env, the highest version per agent since the last flush
 * goes to the store in one call. While a flush is in flight new acks accumulate,
 * so the number of store calls adapts to load instead of growing with it.
 */
export class AckBatcher {
  private readonly pending = new Map<string, Map<string, number>>();
  private readonly inFlight = new Set<string>();
  private readonly scheduled = new Set<string>();
  private closed = false;
  acksReceived = 0;

  constructor(private readonly store: FactStore, private readonly log: Logger, private readonly retryMs = 500) {}

  add(env: string, agentId: string, version: number): void {
    this.acksReceived++;
    let m = this.pending.get(env);
    if (!m) this.pending.set(env, (m = new Map()));
    if (version > (m.get(agentId) ?? -1)) m.set(agentId, version);
    if (!this.inFlight.has(env) && !this.scheduled.has(env)) {
      // One flush per env per tick, however many acks arrived in it.
      this.scheduled.add(env);
      setImmediate(() => {
        this.scheduled.delete(env);
        void this.flush(env);
      });
    }
  }

  private async flush(env: string): Promise<void> {
    if (this.inFlight.has(env)) return;
    const batch = this.pending.get(env);
    if (!batch || batch.size === 0) return;
    this.pending.delete(env);
    this.inFlight.add(env);
    try {
      await this.store.recordAcks(env, batch);
    } catch (e) {
      this.log.warn({ env, agents: batch.size, err: (e as Error).message }, 'recording acks failed; retrying');
      // Put them back (keeping the max) so an ack is never forgotten while the store is away.
      const now = this.pending.get(env) ?? new Map<string, number>();
      for (const [id, v] of batch) if (v > (now.get(id) ?? -1)) now.set(id, v);
      this.pending.set(env, now);
      if (!this.closed) setTimeout(() => void this.flush(env), this.retryMs).unref();
      return;
    } finally {
      this.inFlight.delete(env);
    }
    if (this.pending.get(env)?.size) void this.flush(env);
  }

  /** Flush what is pending (best effort) before shutdown. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending.keys()].map((env) => this.flush(env)));
  }
}
