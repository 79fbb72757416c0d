import { IncrementalHash, factsDigest, type Change, type Fact } from '@factsync/shared';
import type { FactObserver } from './decide/policy-index.js';

/**
 * The agent's replica of its env: facts by type, then key. It knows nothing of
 * ordering; the applier decides what is applied when.
 */
export class LocalStore {
  version = 0;
  epoch: string | null = null;
  /** Chain id of the change at `version` (invariant 9); null when unknown (state saved before ids existed). */
  lastId: string | null = null;
  private readonly byType = new Map<string, Map<string, Record<string, unknown>>>();
  /** Sorted keys per type for paging, rebuilt only after a key was added or removed (not on updates). */
  private readonly sorted = new Map<string, string[]>();
  private count = 0;

  private readonly observers: FactObserver[] = [];

  /** With `trackHash`, keeps an incremental hash of the state (for the history checker). */
  constructor(private readonly hash?: IncrementalHash) {}

  /** Indexes kept beside the facts (the decision indexes) see every put and remove, in apply order. */
  observe(o: FactObserver): void {
    this.observers.push(o);
    for (const f of this.all()) o.put(f.type, f.key, f.value);
  }

  get stateHash(): string | undefined {
    return this.hash?.hex();
  }

  get size(): number {
    return this.count;
  }

  replace(version: number, epoch: string | null, facts: readonly Fact[], id: string | null): void {
    this.byType.clear();
    this.sorted.clear();
    this.count = 0;
    this.hash?.reset();
    for (const o of this.observers) o.reset();
    for (const f of facts) this.put(f.type, f.key, f.value);
    this.version = version;
    this.epoch = epoch;
    this.lastId = id;
  }

  apply(change: Change): void {
    for (const op of change.ops) {
      if (op.op === 'upsert') this.put(op.type, op.key, op.value);
      else this.remove(op.type, op.key);
    }
    this.version = change.version;
    this.lastId = change.id;
  }

  get(type: string, key: string): Fact | undefined {
    const value = this.byType.get(type)?.get(key);
    return value === undefined ? undefined : { type, key, value };
  }

  /** Facts of a type in key order, after `cursor` (a key), at most `limit`. */
  list(type: string, limit: number, cursor: string | undefined): { facts: Fact[]; next: string | null } {
    const m = this.byType.get(type);
    if (!m) return { facts: [], next: null };
    let keys = this.sorted.get(type);
    if (!keys) this.sorted.set(type, (keys = [...m.keys()].sort()));
    let i = 0;
    if (cursor !== undefined) {
      // First key strictly greater than the cursor (binary search on the sorted keys).
      let lo = 0, hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (keys[mid]! <= cursor) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    const page = keys.slice(i, i + limit);
    const facts = page.map((key) => ({ type, key, value: m.get(key)! }));
    const more = i + limit < keys.length;
    return { facts, next: more ? page[page.length - 1]! : null };
  }

  keysWithPrefix(type: string, prefix: string): string[] {
    const m = this.byType.get(type);
    return m ? [...m.keys()].filter((k) => k.startsWith(prefix)) : [];
  }

  *all(): Iterable<Fact> {
    for (const [type, m] of this.byType) for (const [key, value] of m) yield { type, key, value };
  }

  digest(): string {
    return factsDigest(this.all());
  }

  private put(type: string, key: string, value: Record<string, unknown>): void {
    let m = this.byType.get(type);
    if (!m) this.byType.set(type, (m = new Map()));
    const old = m.get(key);
    if (old === undefined) {
      this.count++;
      this.sorted.delete(type);
    } else this.hash?.remove(type, key, old);
    m.set(key, value);
    this.hash?.add(type, key, value);
    for (const o of this.observers) {
      if (old !== undefined) o.remove(type, key, old);
      o.put(type, key, value);
    }
  }

  private remove(type: string, key: string): void {
    const m = this.byType.get(type);
    const old = m?.get(key);
    if (m && old !== undefined) {
      m.delete(key);
      this.sorted.delete(type);
      this.hash?.remove(type, key, old);
      for (const o of this.observers) o.remove(type, key, old);
      this.count--;
      if (m.size === 0) this.byType.delete(type);
    }
  }
}
