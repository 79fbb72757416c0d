import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SparseMulti } from '../../pdp-agent/src/decide/sparse-multi.js';

/** The compact multimap of the relationship indexes behaves as a Map of Sets, whatever the order of adds and removes. */
describe('SparseMulti', () => {
  it('agrees with a Map of Sets over random adds and removes', () => {
    const op = fc.record({ add: fc.boolean(), k: fc.constantFrom('a', 'b', 'c'), v: fc.constantFrom('x', 'y', 'z') });
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const sparse = new SparseMulti();
      const model = new Map<string, Set<string>>();
      for (const { add, k, v } of ops) {
        if (add) {
          sparse.add(k, v);
          if (!model.has(k)) model.set(k, new Set());
          model.get(k)!.add(v);
        } else {
          sparse.remove(k, v);
          model.get(k)?.delete(v);
          if (model.get(k)?.size === 0) model.delete(k);
        }
        expect(sparse.size).toBe(model.size);
        for (const key of ['a', 'b', 'c']) {
          expect([...sparse.values(key)].sort()).toEqual([...(model.get(key) ?? [])].sort());
          for (const val of ['x', 'y', 'z']) expect(sparse.has(key, val)).toBe(model.get(key)?.has(val) ?? false);
        }
      }
    }), { numRuns: 300 });
  });
});
