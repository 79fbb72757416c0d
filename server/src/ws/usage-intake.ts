import type { Logger } from 'pino';
import { usageMonthProblem, type ErrorCode, type UsageMessage, type UsageRefusedMessage } from '@factsync/shared';
import type { UsageLedger } from '../store/fact-store.js';
import type { ServerMetrics } from '../metrics.js';

/** Batches one socket may have waiting for the store; past it the agent is sending faster than the store takes them. */
export const MAX_QUEUED_USAGE = 128;

/**
 * The usage (MAU) reports of one session: user keys the agent checked, stored
 * one batch at a time in arrival order. `usage_ok` tells the agent it may
 * forget a batch; a batch the store will never take (bad shape, a month out of
 * range) is answered `usage_refused` and the session goes on.
 */
export class UsageIntake {
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;

  constructor(private readonly d: {
    env: string;
    ledger: UsageLedger;
    metrics: ServerMetrics;
    log: Logger;
    send: (frame: string) => void;
  }) {}

  /** A batch to store; a message when there are too many waiting (the caller ends the session). */
  take(u: UsageMessage): string | undefined {
    if (this.queued >= MAX_QUEUED_USAGE) return `more than ${MAX_QUEUED_USAGE} usage batches wait to be stored; wait for usage_ok before sending more`;
    const month = usageMonthProblem(u.month, Date.now());
    if (month) {
      this.refuse(u.seq, 'invalid_request', month);
      return undefined;
    }
    this.queued++;
    this.chain = this.chain
      .then(() => this.d.ledger.recordUsage(this.d.env, u.month, u.users))
      .then(() => this.d.send(JSON.stringify({ type: 'usage_ok', seq: u.seq })))
      // Not confirmed: the agent sends the batch again on its next session.
      .catch((e: unknown) => this.d.log.warn({ err: (e as Error).message }, 'could not store usage'))
      .finally(() => this.queued--);
    return undefined;
  }

  refuse(seq: number, code: ErrorCode, message: string): void {
    this.d.metrics.rejected.inc({ code: 'usage_refused' });
    this.d.log.warn({ seq, message }, 'usage report refused');
    this.d.send(JSON.stringify({ type: 'usage_refused', seq, error: code, message } satisfies UsageRefusedMessage));
  }
}
