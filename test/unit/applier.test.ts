import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Applier, LocalStore } from '@factsync/pdp-agent';
import { chainId } from '@factsync/shared';
import { chainedHistory } from '../src/chain.js';

const history = chainedHistory((v) => [{ op: 'upsert', type: 'user', key: `k${v}`, value: { v } }]);
const change = (version: number) => history(version);

describe('Applier, a share of each version (scoped agents)', () => {
  // The env's history; a share carries its ids and `prev` links, only some ops, and runs of empty versions as one change.
  const share = (version: number, ops: boolean, from?: number) => {
    const whole = change(version);
    return { version, id: whole.id, ts: whole.ts, prev: change((from ?? version) - 1)?.id ?? '', ops: ops ? whole.ops : [], ...(from !== undefined ? { from } : {}) };
  };

  it('applies runs in order whatever order they arrive in, each version once, and waits behind a gap', () => {
    const versions: number[] = [];
    const a = new Applier(new LocalStore(), (c) => versions.push(c.version));
    a.snapshot(1, 'e', [], change(1).id);
    // 2-4 a run without ops, 5 with its op, 6-7 a run: offered out of order and twice.
    expect(a.offer([share(5, true), share(7, false, 6)])).toMatchObject({ kind: 'gap', applied: 1, before: 5 });
    expect(a.offer([share(4, false, 2), share(5, true)])).toEqual({ kind: 'ok', applied: 7, count: 3 });
    expect(versions).toEqual([4, 5, 7]);
    expect(a.offer([share(7, false, 6)])).toEqual({ kind: 'ok', applied: 7, count: 0 });
  });

  it('sees a history that does not continue by the prev link (invariant 9 on a share)', () => {
    const a = new Applier(new LocalStore());
    a.snapshot(1, 'e', [], change(1).id);
    expect(a.offer([{ ...share(3, false, 2), prev: 'another-history' }])).toEqual({ kind: 'forked', applied: 1, count: 0, at: 3 });
  });
});

describe('Applier', () => {
  it('applies consecutive versions and ignores duplicates', () => {
    const applied: number[] = [];
    const a = new Applier(new LocalStore(), (c) => applied.push(c.version));
    a.snapshot(0, 'e', [], '');
    expect(a.offer([change(1), change(2)])).toEqual({ kind: 'ok', applied: 2, count: 2 });
    expect(a.offer([change(2), change(1)])).toEqual({ kind: 'ok', applied: 2, count: 0 });
    expect(applied).toEqual([1, 2]);
  });

  it('holds versions behind a gap and reports the missing range, then drains once it is filled', () => {
    const applied: number[] = [];
    const a = new Applier(new LocalStore(), (c) => applied.push(c.version));
    a.snapshot(0, 'e', [], '');
    a.offer([change(1)]);
    expect(a.offer([change(4), change(5)])).toEqual({ kind: 'gap', applied: 1, count: 0, after: 1, before: 4 });
    expect(a.offer([change(2)])).toMatchObject({ kind: 'gap', applied: 2, before: 4 });
    expect(a.offer([change(3)])).toEqual({ kind: 'ok', applied: 5, count: 3 });
    expect(applied).toEqual([1, 2, 3, 4, 5]);
  });

  it('a snapshot replaces state and drops buffered versions it already covers', () => {
    const store = new LocalStore();
    const a = new Applier(store);
    a.snapshot(0, 'e', [], '');
    a.offer([change(3), change(6)]);
    const r = a.snapshot(5, 'e2', [{ type: 'user', key: 'only', value: {} }], change(5).id);
    expect(r).toEqual({ kind: 'ok', applied: 6, count: 1 });
    expect(store.epoch).toBe('e2');
    expect(store.get('user', 'only')).toBeDefined();
    expect(store.get('user', 'k3')).toBeUndefined();
    expect(store.get('user', 'k6')).toBeDefined();
  });

  it('property: any delivery order with duplicates applies every version exactly once, in order', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 60 }).chain((n) => fc.tuple(fc.constant(n), fc.array(fc.integer({ min: 1, max: n }), { maxLength: 200 }))),
      ([n, extra]) => {
        const versions = [...Array.from({ length: n }, (_, i) => i + 1), ...extra];
        const order = fc.sample(fc.shuffledSubarray(versions, { minLength: versions.length, maxLength: versions.length }), 1)[0]!;
        const applied: number[] = [];
        const a = new Applier(new LocalStore(), (c) => applied.push(c.version));
        a.snapshot(0, 'e', [], '');
        for (const v of order) a.offer([change(v)]);
        expect(applied).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        expect(a.buffered).toBe(0);
      },
    ), { numRuns: 200 });
  });

  it('refuses a version that does not follow the chain of what it applied (invariant 9)', () => {
    const store = new LocalStore();
    const a = new Applier(store);
    a.snapshot(0, 'e', [], '');
    a.offer([change(1), change(2)]);
    // Version 3 of another history: same number, a predecessor this agent never applied.
    const other = chainedHistory((v) => [{ op: 'upsert', type: 'user', key: `other${v}`, value: {} }]);
    expect(a.offer([other(3)])).toEqual({ kind: 'forked', applied: 2, count: 0, at: 3 });
    expect(store.get('user', 'other3')).toBeUndefined();
    // A tampered change (ops edited, id kept) is refused the same way.
    const tampered = { ...change(3), ops: [{ op: 'upsert' as const, type: 'user', key: 'evil', value: {} }] };
    expect(a.offer([tampered])).toMatchObject({ kind: 'forked', at: 3 });
    expect(a.offer([change(3)])).toEqual({ kind: 'ok', applied: 3, count: 1 });
    expect(store.lastId).toBe(change(3).id);
    expect(store.lastId).toBe(chainId(change(2).id, 3, change(3).ts, JSON.stringify(change(3).ops)));
  });
});

describe('LocalStore', () => {
  it('lists a type in key order with a cursor', () => {
    const s = new LocalStore();
    s.replace(1, 'e', ['c', 'a', 'd', 'b', 'e'].map((key) => ({ type: 'user', key, value: {} })), null);
    const p1 = s.list('user', 2, undefined);
    expect(p1.facts.map((f) => f.key)).toEqual(['a', 'b']);
    const p2 = s.list('user', 2, p1.next!);
    expect(p2.facts.map((f) => f.key)).toEqual(['c', 'd']);
    const p3 = s.list('user', 2, p2.next!);
    expect(p3).toEqual({ facts: [{ type: 'user', key: 'e', value: {} }], next: null });
    // The sorted index follows adds and removes after it was built; updates keep it.
    s.apply({ version: 2, id: 'x', ts: '', ops: [{ op: 'upsert', type: 'user', key: 'aa', value: {} }, { op: 'delete', type: 'user', key: 'b' }, { op: 'upsert', type: 'user', key: 'c', value: { x: 1 } }] });
    expect(s.list('user', 10, undefined).facts.map((f) => [f.key, f.value])).toEqual([['a', {}], ['aa', {}], ['c', { x: 1 }], ['d', {}], ['e', {}]]);
  });

  it('digest ignores insertion order and key order inside values', () => {
    const a = new LocalStore();
    const b = new LocalStore();
    a.replace(1, 'e', [{ type: 't', key: '1', value: { x: 1, y: 2 } }, { type: 't', key: '2', value: {} }], null);
    b.replace(1, 'e', [{ type: 't', key: '2', value: {} }, { type: 't', key: '1', value: { y: 2, x: 1 } }], null);
    expect(a.digest()).toBe(b.digest());
    b.apply({ version: 2, id: 'x', ts: '', ops: [{ op: 'delete', type: 't', key: '2' }] });
    expect(a.digest()).not.toBe(b.digest());
  });
});
