import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LocalStore } from '@factsync/pdp-agent';

describe('LocalStore.list', () => {
  it('pages facts of a type in key order across inserts and deletes, like sorting the keys (property)', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.string({ minLength: 1, maxLength: 4 })), { maxLength: 200 }),
      fc.integer({ min: 1, max: 7 }),
      (steps, limit) => {
        const store = new LocalStore();
        const model = new Set<string>();
        let v = 0;
        for (const [add, key] of steps) {
          store.apply({ version: ++v, id: 'x', ts: '', ops: [add ? { op: 'upsert', type: 't', key, value: { v } } : { op: 'delete', type: 't', key }] });
          if (add) model.add(key);
          else model.delete(key);
          // Another type never shows up in this one's pages.
          if (v % 3 === 0) store.apply({ version: ++v, id: 'x', ts: '', ops: [{ op: 'upsert', type: 'u', key, value: {} }] });
        }
        const seen: string[] = [];
        let cursor: string | undefined;
        for (let guard = 0; guard < 1000; guard++) {
          const page = store.list('t', limit, cursor);
          seen.push(...page.facts.map((f) => f.key));
          expect(page.facts.length).toBeLessThanOrEqual(limit);
          if (page.next === null) break;
          cursor = page.next;
        }
        expect(seen).toEqual([...model].sort());
        for (const p of ['a', 'ab', '']) expect(store.keysWithPrefix('t', p)).toEqual([...model].filter((k) => k.startsWith(p)).sort());
      },
    ), { numRuns: 300 });
  });

  it('a snapshot replaces the order too', () => {
    const store = new LocalStore();
    store.apply({ version: 1, id: 'x', ts: '', ops: [{ op: 'upsert', type: 't', key: 'old', value: {} }] });
    store.replace(5, 'e', [{ type: 't', key: 'b', value: {} }, { type: 't', key: 'a', value: {} }], null);
    expect(store.list('t', 10, undefined).facts.map((f) => f.key)).toEqual(['a', 'b']);
    expect(store.list('t', 1, 'a')).toEqual({ facts: [{ type: 't', key: 'b', value: {} }], next: null });
  });
});
