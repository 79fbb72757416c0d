import { describe, expect, it } from 'vitest';
import { IncrementalHash, type Op } from '@factsync/shared';
import { checkHistories, checkSyncedNeverEarly, type HistoryEntry } from '../src/history-checker.js';

/** The checker must catch every kind of violation it claims to, or the fault suite proves nothing. */
describe('history checker', () => {
  const op = (k: string, n: number): Op => ({ op: 'upsert', type: 'doc', key: k, value: { n } });
  const writes = [1, 2, 3, 4].map((v) => ({ id: `w${v}`, version: v, ops: [op(`k${v % 2}`, v)] }));
  const hashes: string[] = [];
  const h = new IncrementalHash();
  const state = new Map<string, { n: number }>();
  hashes.push(h.hex());
  for (const w of writes) {
    const o = w.ops[0] as Extract<Op, { op: 'upsert' }>;
    const old = state.get(o.key);
    if (old) h.remove('doc', o.key, old);
    h.add('doc', o.key, o.value);
    state.set(o.key, o.value as { n: number });
    hashes.push(h.hex());
  }
  const snapshotFacts = [...state].map(([key, value]) => ({ type: 'doc', key, value }));
  const entry = (v: number, kind: HistoryEntry['kind'] = 'change', hash = hashes[v]!): HistoryEntry => ({ v, h: hash, kind });
  const run = (entries: HistoryEntry[], w = writes) => checkHistories({ writes: w, histories: new Map([['a', entries]]), head: 4, snapshotFacts }).violations;

  it('accepts a correct history, with snapshots and restores', () => {
    expect(run([entry(0, 'snapshot'), entry(1), entry(2), entry(3), entry(4)])).toEqual([]);
    expect(run([entry(0, 'snapshot'), entry(1), entry(1, 'restore'), entry(2), entry(3, 'snapshot'), entry(4)])).toEqual([]);
  });

  it('catches gaps, duplicates, reorders, wrong states, early ends and lost or invented versions', () => {
    expect(run([entry(0, 'snapshot'), entry(1), entry(3), entry(4)]).join()).toMatch(/applied 3 after 1 \(gap\)/);
    expect(run([entry(0, 'snapshot'), entry(1), entry(2), entry(2), entry(3), entry(4)]).join()).toMatch(/duplicate or reorder/);
    expect(run([entry(0, 'snapshot'), entry(2), entry(1)]).join()).toMatch(/gap|reorder/);
    expect(run([entry(0, 'snapshot'), entry(1), entry(2, 'change', hashes[1]), entry(3), entry(4)]).join()).toMatch(/state after change 2 differs/);
    expect(run([entry(0, 'snapshot'), entry(1), entry(2)]).join()).toMatch(/ended at 2, head is 4/);
    expect(run([entry(0, 'snapshot'), entry(1), entry(2), entry(3), entry(4)], writes.slice(0, 3)).join()).toMatch(/version 4 exists but no writer was given it/);
    expect(run([entry(0, 'snapshot'), entry(1), entry(2), entry(3), entry(4)], [...writes, { id: 'x', version: 3, ops: [] }]).join()).toMatch(/given to two writes/);
    expect(run([entry(0, 'snapshot'), entry(1), entry(2), entry(3), entry(4)], [...writes, { id: 'lost', version: 5, ops: [] }]).join()).toMatch(/beyond head 4 \(lost write\)/);
  });

  it('catches an agent whose chain ids are not the server\'s (invariant 9)', () => {
    const chain = new Map([[1, 'i1'], [2, 'i2'], [3, 'i3'], [4, 'i4']]);
    const withIds = (ids: string[]) => [entry(0, 'snapshot'), ...[1, 2, 3, 4].map((v) => ({ ...entry(v), id: ids[v - 1]! }))];
    const check = (entries: HistoryEntry[]) => checkHistories({ writes, histories: new Map([['a', entries]]), head: 4, snapshotFacts, chain }).violations;
    expect(check(withIds(['i1', 'i2', 'i3', 'i4']))).toEqual([]);
    expect(check(withIds(['i1', 'i2', 'other', 'i4'])).join()).toMatch(/chain id after change 3 is not the server's/);
    expect(check([entry(0, 'snapshot'), entry(1), entry(2), entry(3), entry(4)]).join()).toMatch(/applied without a chain id/);
  });

  it('catches synced reported before an acked agent had applied the write', () => {
    const at = (v: number, t: number): HistoryEntry => ({ v, kind: 'change', h: '', t });
    const write = (version: number, acked: string[], repliedAt: number) => ({ id: `w${version}`, version, ops: [], sync: { synced: true, acked }, repliedAt });
    const histories = new Map([['a1', [at(1, 100), at(2, 200), at(3, 300)]], ['a2', [at(1, 150), at(3, 900)]]]);
    const ok = checkSyncedNeverEarly([write(2, ['a1'], 250), write(1, ['a1', 'a2'], 160), write(2, ['a2'], 950)], histories);
    expect(ok).toMatchObject({ violations: [], acksChecked: 4, syncedTrue: 3 });
    // a2 applied 3 (covering 2) only at 900: an answer at 250 naming a2 was early.
    expect(checkSyncedNeverEarly([write(2, ['a2'], 250)], histories).violations.join()).toMatch(/before a2 had applied it/);
    expect(checkSyncedNeverEarly([write(1, ['a9'], 250)], histories).violations.join()).toMatch(/a9, which has no history/);
  });
});
