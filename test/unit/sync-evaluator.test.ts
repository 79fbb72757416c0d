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
