import { IncrementalHash, factsDigest, type Change, type Fact } from '@factsync/shared';
import btree from 'sorted-btree';
import type { FactObserver } from './decide/policy-index.js';

// sorted-btree is CommonJS: Node's ESM loader puts its exports on the default import, bundlers
// (vitest) may hand over the class itself; accept both.
type BTreeModule = typeof btree;
const mod = ((btree as unknown as { default?: BTreeModule }).default ?? btree) as BTreeModule | BTreeModule['default'];
const BTree = (typeof mod === 'function' ? mod : mod.default) as BTreeModule['default'];
const stringOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
type KeyTree = InstanceType<typeof BTree<string, undefined>>;

/**
 * The agent's replica of its env: facts by type, then key. It knows nothing of
 * ordering; the applier decides what is applied when.
 */
export class LocalStore {
  version = 0;
  epoch: string | null = null;
  /** Chain id of the change at `version` (invariant 9); null when unknown (state saved before ids existed). */
  lastId: string | null = null;
  /** When the change at `version` was written; null after a snapshot or a restart (a snapshot has no time of its own). */
  lastTs: string | null = null;
  private readonly byType = new Map<string, Map<string, Record<string, unknown>>>();
  /** Keys per type in order, for paging: a B+ tree, so an insert costs O(log n) and nothing is re-sorted. */
  private readonly ordered = new Map<string, KeyTree>();
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
    this.ordered.clear();
    this.count = 0;
    this.hash?.reset();
    for (const o of this.observers) o.reset();
    for (const f of facts) this.put(f.type, f.key, f.value);
    this.version = version;
    this.epoch = epoch;
    this.lastId = id;
    this.lastTs = null;
  }

  apply(change: Change): void {
    for (const op of change.ops) {
      if (op.op === 'upsert') this.put(op.type, op.key, op.value);
      else this.remove(op.type, op.key);
    }
    this.version = change.version;
    this.lastId = change.id;
    this.lastTs = change.ts;
  }

  get(type: string, key: string): Fact | undefined {
    const value = this.byType.get(type)?.get(key);
    return value === undefined ? undefined : { type, key, value };
  }

  /** Facts of a type in key order, after `cursor` (a key), at most `limit`. */
  list(type: string, limit: number, cursor: string | undefined): { facts: Fact[]; next: string | null } {
    const m = this.byType.get(type);
    const keys = this.ordered.get(type);
    if (!m || !keys) return { facts: [], next: null };
    const facts: Fact[] = [];
    let k = cursor === undefined ? keys.minKey() : keys.nextHigherKey(cursor);
    while (k !== undefined && facts.length < limit) {
      facts.push({ type, key: k, value: m.get(k)! });
      k = keys.nextHigherKey(k);
    }
    return { facts, next: k !== undefined && facts.length > 0 ? facts[facts.length - 1]!.key : null };
  }

  /** How many facts of a type the store holds. */
  countOf(type: string): number {
    return this.byType.get(type)?.size ?? 0;
  }

  /** Facts of a type whose key starts with `prefix` (and sorts after `after`), in key order, lazily: a walk of the ordered keys, no copy. */
  *iterate(type: string, prefix = '', after?: string): Iterable<Fact> {
    const m = this.byType.get(type);
    const keys = this.ordered.get(type);
    if (!m || !keys) return;
    const first = after !== undefined && after >= prefix ? keys.nextHigherKey(after) : keys.has(prefix) ? prefix : keys.nextHigherKey(prefix);
    for (let k = first; k !== undefined && k.startsWith(prefix); k = keys.nextHigherKey(k)) {
      const value = m.get(k);
      if (value !== undefined) yield { type, key: k, value };
    }
  }

  /** Keys of a type that start with `prefix`, in order: a range of the ordered keys, not a scan of them all. */
  keysWithPrefix(type: string, prefix: string): string[] {
    const keys = this.ordered.get(type);
    if (!keys) return [];
    const out: string[] = [];
    let k = keys.has(prefix) ? prefix : keys.nextHigherKey(prefix);
    while (k !== undefined && k.startsWith(prefix)) {
      out.push(k);
      k = keys.nextHigherKey(k);
    }
    return out;
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
      let keys = this.ordered.get(type);
      if (!keys) this.ordered.set(type, (keys = new BTree<string, undefined>(undefined, stringOrder)));
      keys.set(key, undefined);
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
      this.ordered.get(type)?.delete(key);
      this.hash?.remove(type, key, old);
      for (const o of this.observers) o.remove(type, key, old);
      this.count--;
      if (m.size === 0) {
        this.byType.delete(type);
        this.ordered.delete(type);
      }
    }
  }
}
