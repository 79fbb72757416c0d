import { backoffDelayMs } from '@factsync/shared';
import { FactsyncClientError } from '@factsync/sdk';

/** Failures where the request may be sent again as it was: the server was away or busy. */
export const isTransient = (e: unknown): boolean =>
  e instanceof FactsyncClientError && (e.code === 'network_error' || e.code === 'store_unavailable' || e.code === 'shutting_down' || e.status === 502 || e.status === 503 || e.status === 504);

/**
 * Runs `f` until it succeeds or fails for a reason a retry cannot fix, for at
 * most `maxMs`. Only for requests that are safe to repeat (reads, and writes
 * carrying a producer number or an idempotency key).
 */
export async function withRetry<T>(f: () => Promise<T>, o: { maxMs?: number; onRetry?: (e: Error, attempt: number) => void } = {}): Promise<T> {
  const deadline = Date.now() + (o.maxMs ?? 120_000);
  for (let attempt = 0; ; attempt++) {
    try {
      return await f();
    } catch (e) {
      if (!isTransient(e) || Date.now() > deadline) throw e;
      o.onRetry?.(e as Error, attempt);
      await new Promise((r) => setTimeout(r, backoffDelayMs(attempt, { initialMs: 200, maxMs: 5_000 })));
    }
  }
}
