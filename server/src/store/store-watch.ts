import type { Logger } from 'pino';

export type StoreHealth = 'reachable' | 'lost';

export interface StoreWatchOptions {
  ping(): Promise<void>;
  /** No successful ping for this long and the store counts as lost (STORE_LOST_MS). */
  lostAfterMs: number;
  log: Logger;
  /** Called once each time the store goes from reachable to lost. */
  onLost(): void;
}

/**
 * Whether this replica still reaches its store. A replica cut from Redis but
 * not from its agents would otherwise keep their websockets open and feed them
 * nothing: their acks stop, writers through other replicas wait for them until
 * the sync timeout, and their leases run out while they are still connected.
 * Once no ping has succeeded for `lostAfterMs` (well inside LEASE_MS), the
 * gateway closes its sessions with a retryable code so the agents move to a
 * replica that has its store, and refuses new ones until a ping succeeds.
 */
export class StoreWatch {
  private healthValue: StoreHealth = 'reachable';
  private lastOk = Date.now();
  /** When the ping in flight started, or undefined when none is. */
  private pingSince: number | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly opts: StoreWatchOptions) {
    // Probing four times per limit notices the loss within 1.25 × the limit.
    this.timer = setInterval(() => this.tick(), Math.max(25, Math.floor(opts.lostAfterMs / 4)));
    this.timer.unref();
  }

  get health(): StoreHealth {
    return this.healthValue;
  }

  private setHealth(next: StoreHealth, err?: string): void {
    if (next === this.healthValue) return;
    this.healthValue = next;
    if (next === 'lost') {
      this.opts.log.error({ silentMs: Date.now() - this.lastOk, err }, 'the store has not answered for STORE_LOST_MS: closing this replica\'s websockets so its agents move to a replica that reaches the store');
      this.opts.onLost();
    } else {
      this.opts.log.info('the store answers again: accepting websockets');
    }
  }

  private tick(): void {
    const now = Date.now();
    // One ping at a time; one that has hung for the whole limit is given up on (its answer still counts if it comes).
    if (this.pingSince === undefined || now - this.pingSince > this.opts.lostAfterMs) {
      const since = (this.pingSince = now);
      const settled = () => {
        if (this.pingSince === since) this.pingSince = undefined;
      };
      this.opts.ping().then(
        () => {
          settled();
          this.lastOk = Date.now();
          this.setHealth('reachable');
        },
        (e: unknown) => {
          settled();
          this.check((e as Error).message);
        },
      );
    }
    // A ping that hangs (packets dropped, no error yet) counts as silence too.
    this.check();
  }

  private check(err?: string): void {
    if (Date.now() - this.lastOk > this.opts.lostAfterMs) this.setHealth('lost', err);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
