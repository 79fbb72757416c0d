/**
 * A multimap for the relationship indexes, where most keys hold one value
 * (an object is usually related to one subject by a relation): a single value
 * is kept inline as the map's value, and only a second one makes a Set. A
 * Map-of-Maps-of-Sets cost ~490 bytes per tuple; this costs the map slot.
 */
export class SparseMulti {
  private readonly m = new Map<string, string | Set<string>>();

  get size(): number {
    return this.m.size;
  }

  add(k: string, v: string): void {
    const cur = this.m.get(k);
    if (cur === undefined) this.m.set(k, v);
    else if (typeof cur === 'string') {
      if (cur !== v) this.m.set(k, new Set([cur, v]));
    } else cur.add(v);
  }

  remove(k: string, v: string): void {
    const cur = this.m.get(k);
    if (cur === undefined) return;
    if (typeof cur === 'string') {
      if (cur === v) this.m.delete(k);
    } else if (cur.delete(v) && cur.size === 1) this.m.set(k, cur.values().next().value!);
  }

  has(k: string, v: string): boolean {
    const cur = this.m.get(k);
    return cur === v || (typeof cur === 'object' && cur.has(v));
  }

  /** The values of `k` (none when absent). */
  values(k: string): Iterable<string> {
    const cur = this.m.get(k);
    return cur === undefined ? NONE : typeof cur === 'string' ? [cur] : cur;
  }

  keys(): Iterable<string> {
    return this.m.keys();
  }

  clear(): void {
    this.m.clear();
  }
}

const NONE: readonly string[] = [];
