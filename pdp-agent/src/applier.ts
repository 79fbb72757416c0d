import { followsHistory, type Change, type Fact } from '@factsync/shared';
import type { LocalStore } from './local-store.js';

export type OfferResult =
  /** Everything contiguous was applied; `applied` is the new version (maybe unchanged, if all were duplicates). */
  | { kind: 'ok'; applied: number; count: number }
  /** Versions (after, before) are missing; later versions wait in the buffer until the gap is repaired. */
  | { kind: 'gap'; applied: number; count: number; after: number; before: number }
  /** Version `at` does not follow the chain of what was applied (invariant 9): the history was rewritten. */
  | { kind: 'forked'; applied: number; count: number; at: number }
  /** A snapshot whose facts and replay hold `got` facts where the server counted `expected`: the state was cleared. */
  | { kind: 'incomplete'; applied: number; count: number; expected: number; got: number };

/** Upper bound on versions held back behind a gap before we give up and resync. */
export const MAX_BUFFERED = 100_000;

/**
 * Applies versions strictly in order, each exactly once (invariant 2). It
 * accepts changes from any source (the socket, HTTP repair) in any order and
 * with duplicates; a version is applied only when it is exactly applied+1 and
 * its chained id follows the last one applied (invariant 9). A scoped agent
 * receives its share of each version instead: it checks the `prev` link, and
 * a run of versions with nothing for it comes as one change (`from`..`version`).
 */
export class Applier {
  private readonly buffer = new Map<number, Change>();

  constructor(
    private readonly store: LocalStore,
    private readonly onApplied: (c: Change) => void = () => undefined,
    /** Called after a snapshot replaced the state, before buffered changes are drained on top of it. */
    private readonly onSnapshot: (version: number, epoch: string | null) => void = () => undefined,
  ) {}

  get applied(): number {
    return this.store.version;
  }

  get epoch(): string | null {
    return this.store.epoch;
  }

  get buffered(): number {
    return this.buffer.size;
  }

  /**
   * Replaces the state with `facts` at `version`, then replays `replay` (the
   * changes written while the server scanned them; see replayBreak) in the
   * same step: the states in between are not states of the env, so nothing
   * sees them, and the snapshot counts as one at the last replayed version.
   * With `expected` (the server's count of facts at that version), a state
   * that does not hold that many facts is cleared instead.
   */
  snapshot(version: number, epoch: string | null, facts: readonly Fact[], id: string | null, replay: readonly Change[] = [], expected?: number): OfferResult {
    this.store.replace(version, epoch, facts, id);
    for (const c of replay) this.store.apply(c);
    if (expected !== undefined && this.store.size !== expected) {
      // Not the env at any version (a fact was missed): nothing of it may be served or acked.
      const got = this.store.size;
      this.store.replace(0, null, [], null);
      this.buffer.clear();
      return { kind: 'incomplete', applied: 0, count: 0, expected, got };
    }
    const at = this.store.version;
    this.onSnapshot(at, epoch);
    // A run that straddles `at` is dropped too: its link is to a version before `at`. The gap it leaves is repaired from the log.
    for (const v of this.buffer.keys()) if (v <= at) this.buffer.delete(v);
    return this.drain(0);
  }

  offer(changes: readonly Change[]): OfferResult {
    for (const c of changes) {
      // Keyed by the first version a change stands for: it applies when that one is next.
      const first = c.from ?? c.version;
      if (first > this.applied && this.buffer.size < MAX_BUFFERED) this.buffer.set(first, c);
    }
    return this.drain(0);
  }

  /** Forget what waits behind a gap (before a resync from scratch). */
  clearBuffer(): void {
    this.buffer.clear();
  }

  private drain(count: number): OfferResult {
    for (;;) {
      const next = this.buffer.get(this.applied + 1);
      if (!next) break;
      const prevId = this.store.lastId;
      if (prevId !== null && !followsHistory(prevId, next)) {
        this.buffer.clear();
        return { kind: 'forked', applied: this.applied, count, at: next.version };
      }
      this.buffer.delete(this.applied + 1);
      this.store.apply(next);
      this.onApplied(next);
      count++;
    }
    if (this.buffer.size === 0) return { kind: 'ok', applied: this.applied, count };
    let before = Infinity;
    for (const v of this.buffer.keys()) if (v < before) before = v;
    return { kind: 'gap', applied: this.applied, count, after: this.applied, before };
  }
}
