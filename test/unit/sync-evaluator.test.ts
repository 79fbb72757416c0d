import { describe, expect, it } from 'vitest';
import { evaluateSync, type AgentView } from '../../server/src/acks/sync-evaluator.js';

const view = (entries: [string, Partial<AgentView>][]) =>
  new Map(entries.map(([id, a]) => [id, { applied: 0, since: 0, connected: true, conn: null, ...a }]));

describe('evaluateSync', () => {
  const agents = view([
    ['a', { applied: 10 }],
    ['b', { applied: 4 }],
    ['late', { applied: 0, since: 7 }], // connected after version 5 was written
    ['gone', { applied: 1, connected: false }],
  ]);

  it('all: connected agents that were there when the version was written', () => {
    expect(evaluateSync(agents, 5, { kind: 'all' })).toEqual({ version: 5, synced: false, acked: ['a'], pending: ['b'] });
    expect(evaluateSync(agents, 4, { kind: 'all' })).toEqual({ version: 4, synced: true, acked: ['a', 'b'], pending: [] });
    expect(evaluateSync(agents, 8, { kind: 'all' }).pending).toEqual(['b', 'late']);
  });

  it('count and ids', () => {
    expect(evaluateSync(agents, 4, { kind: 'count', n: 2 }).synced).toBe(true);
    expect(evaluateSync(agents, 5, { kind: 'count', n: 2 }).synced).toBe(false);
    expect(evaluateSync(agents, 1, { kind: 'ids', ids: ['gone', 'a'] })).toEqual({ version: 1, synced: true, acked: ['gone', 'a'], pending: [] });
    expect(evaluateSync(agents, 5, { kind: 'ids', ids: ['a', 'nobody'] })).toMatchObject({ synced: false, pending: ['nobody'] });
  });

  it('an env without agents is trivially synced for all', () => {
    expect(evaluateSync(new Map(), 3, { kind: 'all' }).synced).toBe(true);
  });
});

describe('isSynced agrees with evaluateSync', () => {
  it('property: for random agent views and wait forms', async () => {
    const fc = (await import('fast-check')).default;
    const { isSynced } = await import('../../server/src/acks/sync-evaluator.js');
    const agent = fc.record({ applied: fc.nat(10), since: fc.nat(10), connected: fc.boolean(), conn: fc.constant(null) });
    const waitFor = fc.oneof(
      fc.constant({ kind: 'all' as const }),
      fc.integer({ min: 1, max: 6 }).map((n) => ({ kind: 'count' as const, n })),
      fc.subarray(['a', 'b', 'c', 'd', 'x'], { minLength: 1 }).map((ids) => ({ kind: 'ids' as const, ids })),
    );
    fc.assert(fc.property(fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd', 'e'), agent), fc.nat(10), waitFor, (d, v, w) => {
      const m = new Map(Object.entries(d));
      expect(isSynced(m, v, w)).toBe(evaluateSync(m, v, w).synced);
    }), { numRuns: 1000 });
  });
});
