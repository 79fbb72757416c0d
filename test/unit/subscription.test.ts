import { describe, expect, it } from 'vitest';
import { GENESIS_ID, chainId, followsHistory, shareOfChange, typesKey, type Change } from '@factsync/shared';

const change = (prev: string, version: number, ops: Change['ops']): Change => {
  const ts = `2026-12-04T00:00:0${version}Z`;
  return { version, ts, ops, id: chainId(prev, version, ts, JSON.stringify(ops)) };
};

describe('shares of changes (subscriptions with types)', () => {
  const c1 = change(GENESIS_ID, 1, [{ op: 'upsert', type: 'user', key: 'a', value: {} }, { op: 'upsert', type: 'tenant', key: 't', value: {} }]);
  const c2 = change(c1.id, 2, [{ op: 'delete', type: 'tenant', key: 't' }]);

  it('keep version, id and time, only the types\' ops, and link to the id before', () => {
    const s2 = shareOfChange(c2, c1.id, new Set(['user']));
    expect(s2).toEqual({ version: 2, id: c2.id, prev: c1.id, ts: c2.ts, ops: [] });
    expect(shareOfChange(c1, GENESIS_ID, new Set(['tenant'])).ops).toEqual([c1.ops[1]]);
  });

  it('are followed by their link; a link to another id is a history that does not continue', () => {
    expect(followsHistory(c1.id, shareOfChange(c2, c1.id, new Set(['user'])))).toBe(true);
    expect(followsHistory('another-id', shareOfChange(c2, c1.id, new Set(['user'])))).toBe(false);
    // Whole changes are still checked by their chain id, which covers their ops.
    expect(followsHistory(c1.id, c2)).toBe(true);
    expect(followsHistory(c1.id, { ...c2, ops: [] })).toBe(false);
  });

  it('have one key per set of types, whatever the order or repeats', () => {
    expect(typesKey(['user', 'tenant', 'user'])).toBe(typesKey(['tenant', 'user']));
  });
});
