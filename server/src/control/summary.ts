import type { WaitFor } from '@factsync/shared';

/**
 * A replica's compact view of its agents for one env, what it publishes for
 * the other replicas once per tick with acks (and as a heartbeat): O(distinct
 * applied versions), not O(agents).
 */
export interface Summary {
  /** Every agent it holds has every version <= floor (the min of max(since, applied)). */
  floor: number;
  /** [applied, count] pairs, by applied. */
  histogram: [number, number][];
  /** The highest applied. */
  max: number;
}

export function summarize(agents: Iterable<{ since: number; applied: number }>): Summary {
  const index = new SummaryIndex();
  for (const a of agents) index.add(a.since, a.applied);
  return index.summary();
}

const countAtLeast = (s: Summary, version: number): number => {
  let n = 0;
  for (const [v, c] of s.histogram) if (v >= version) n += c;
  return n;
};

/**
 * Whether the summaries say V may be synced: the trigger to ask the store,
 * which is the judge (the answer lists ids, and summaries may lag a tick).
 * `local` answers for the agents this replica holds exactly.
 */
export function gate(
  summaries: Iterable<Summary>,
  version: number,
  waitFor: WaitFor,
  localHas: (id: string) => boolean | undefined,
): boolean {
  const all = [...summaries];
  switch (waitFor.kind) {
    case 'all':
    case 'local':
      return all.every((s) => s.floor >= version);
    case 'count':
      return all.reduce((n, s) => n + countAtLeast(s, version), 0) >= waitFor.n;
    case 'ids':
      return waitFor.ids.every((id) => localHas(id) ?? all.some((s) => s.max >= version));
  }
}

/**
 * The summary of this replica's agents kept up to date per change in
 * O(distinct versions), never recomputed over every agent: an ack moves one
 * agent between two buckets. (A flush runs once per Redis round trip while
 * acks arrive; at 5,000 agents per replica a recomputation there cost more
 * than everything else the control plane does.)
 */
export class SummaryIndex {
  /** applied version → agents at it. */
  private readonly applied = new Map<number, number>();
  /** max(since, applied) → agents at it; the floor is its smallest key. */
  private readonly reach = new Map<number, number>();
  private cached: Summary | undefined;

  add(since: number, applied: number): void {
    bump(this.applied, applied, 1);
    bump(this.reach, Math.max(since, applied), 1);
    this.cached = undefined;
  }

  remove(since: number, applied: number): void {
    bump(this.applied, applied, -1);
    bump(this.reach, Math.max(since, applied), -1);
    this.cached = undefined;
  }

  summary(): Summary {
    if (this.cached) return this.cached;
    let f = Number.MAX_SAFE_INTEGER;
    for (const v of this.reach.keys()) if (v < f) f = v;
    let m = 0;
    for (const v of this.applied.keys()) if (v > m) m = v;
    this.cached = { floor: f, histogram: [...this.applied].sort((x, y) => x[0] - y[0]), max: m };
    return this.cached;
  }
}

function bump(map: Map<number, number>, key: number, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n > 0) map.set(key, n);
  else map.delete(key);
}
