import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SummaryIndex, gate, summarize, type Summary } from '../../server/src/control/summary.js';

/** The summary computed from scratch, independently of the code under test. */
function reference(agents: { since: number; applied: number }[]): Summary {
  let f = Number.MAX_SAFE_INTEGER;
  let m = 0;
  const counts = new Map<number, number>();
  for (const a of agents) {
    f = Math.min(f, Math.max(a.since, a.applied));
    m = Math.max(m, a.applied);
    counts.set(a.applied, (counts.get(a.applied) ?? 0) + 1);
  }
  return { floor: f, histogram: [...counts].sort((x, y) => x[0] - y[0]), max: m };
}

describe('replica summaries', () => {
  it('property: the incremental index equals a full summary after any sequence of joins, acks and leaves', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('add' as const), since: fc.nat(10), applied: fc.nat(10) }),
      fc.record({ k: fc.constant('ack' as const), i: fc.nat(20), by: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ k: fc.constant('remove' as const), i: fc.nat(20) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const index = new SummaryIndex();
      const agents: { since: number; applied: number }[] = [];
      for (const o of ops) {
        if (o.k === 'add') {
          agents.push({ since: o.since, applied: o.applied });
          index.add(o.since, o.applied);
        } else if (agents.length > 0) {
          const a = agents[o.i % agents.length]!;
          index.remove(a.since, a.applied);
          if (o.k === 'ack') {
            a.applied += o.by;
            index.add(a.since, a.applied);
          } else agents.splice(agents.indexOf(a), 1);
        }
        expect(index.summary()).toEqual(reference(agents));
      }
    }), { numRuns: 300 });
  });

  it('gates: all by the frontier, n by the counts, ids by the exact local view or any replica that reached the version', () => {
    const a = summarize([{ since: 0, applied: 5 }, { since: 7, applied: 3 }]); // f = 5
    const b = summarize([{ since: 0, applied: 9 }]);
    expect(gate([a, b], 5, { kind: 'all' }, () => undefined)).toBe(true);
    expect(gate([a, b], 6, { kind: 'all' }, () => undefined)).toBe(false);
    expect(gate([a, b], 5, { kind: 'count', n: 2 }, () => undefined)).toBe(true);
    expect(gate([a, b], 6, { kind: 'count', n: 2 }, () => undefined)).toBe(false);
    expect(gate([a, b], 9, { kind: 'ids', ids: ['x'] }, () => undefined)).toBe(true); // someone elsewhere reached 9: ask the store
    expect(gate([a, b], 9, { kind: 'ids', ids: ['x'] }, () => false)).toBe(false); // x is here and has not
  });
});
