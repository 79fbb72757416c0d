import type { FactStore, Snapshot } from '../store/fact-store.js';

/**
 * Snapshot reads of one replica: concurrent requests for the same env share
 * one store read (twenty agents starting at once read the env once, not
 * twenty times), and at most `maxStreams` snapshots are streamed at a time;
 * further sessions wait their turn (invariant 10: memory and event-loop time
 * bounded by the limit, not by the number of clients).
 */
export class SnapshotReads {
  private readonly inFlight = new Map<string, Promise<Snapshot>>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly store: FactStore, private readonly maxStreams: number) {}

  read(env: string): Promise<Snapshot> {
    let p = this.inFlight.get(env);
    if (!p) {
      p = this.store.snapshot(env).finally(() => this.inFlight.delete(env));
      this.inFlight.set(env, p);
    }
    return p;
  }

  /** Resolves with a release function once this session may stream a snapshot. */
  async slot(): Promise<() => void> {
    // A released slot passes straight to the next in line, so the count never overshoots.
    if (this.active < this.maxStreams) this.active++;
    else await new Promise<void>((r) => this.waiting.push(r));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }

  get streaming(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }
}
