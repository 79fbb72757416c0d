import { afterAll, describe, expect, inject, it } from 'vitest';
import { nanoid } from 'nanoid';
import { Redis } from 'ioredis';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedStore, createMemoryStore, createRedisStore, type ControlEvent, type EnvEvent, type FactStore, type WriteResult } from '@factsync/server';
import { FactsyncError, GENESIS_ID, PRODUCER_WINDOW, chainId, idOfChangeJson } from '@factsync/shared';
import { testLogger } from '../src/inproc.js';
import { startRedisCluster } from '../src/redis-cluster.js';
import { waitUntil } from '../src/wait.js';

/**
 * The FactStore contract. Both implementations must pass every case, so the
 * embedded store is a faithful stand-in for Redis in dev and in tests.
 */
const RETENTION = 20;
const INLINE = 200;
const opts = { logRetention: RETENTION, idempotencyTtlSeconds: 60, inlineChangeBytes: INLINE, agentRecordTtlMs: 24 * 3600_000 };

// One Redis Cluster for this file, started on first use.
let cluster: Promise<{ url: string; stop(): Promise<void> }> | undefined;
afterAll(async () => {
  await (await cluster)?.stop();
});

const factories: Record<string, (o?: Partial<typeof opts> & { now?: () => number }) => Promise<FactStore>> = {
  memory: async (o = {}) => createMemoryStore({ ...opts, ...o }),
  // The durable embedded store, on a real SQLite file in a fresh directory.
  embedded: async (o = {}) => createEmbeddedStore({ ...opts, ...o, dataDir: mkdtempSync(join(tmpdir(), 'factsync-contract-')) }).store,
  redis: (o = {}) => createRedisStore({ ...opts, ...o, url: inject('redisUrl'), keyPrefix: `c${nanoid(6)}`, commandTimeoutMs: 2000, log: testLogger() }),
  'redis-cluster': async (o = {}) => createRedisStore({
    ...opts, ...o, url: (await (cluster ??= startRedisCluster())).url, cluster: true, keyPrefix: `c${nanoid(6)}`, commandTimeoutMs: 2000, log: testLogger(),
  }),
};

const up = (key: string, value: Record<string, unknown> = { n: 1 }) => ({ op: 'upsert' as const, type: 'user', key, value });
const ts = () => new Date().toISOString();

describe.each(Object.keys(factories))('FactStore contract: %s', (kind) => {
  const stores: FactStore[] = [];
  const make = async () => {
    const s = await factories[kind]!();
    stores.push(s);
    return s;
  };
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });

  describe('the log and the state (FactLog)', () => {
    it('assigns versions 1, 2, 3 with no gap, per env, and creates the epoch with the first write', async () => {
      const s = await make();
      expect(await s.head('a')).toEqual({ version: 0, epoch: null, id: '' });
      const r = [];
      for (let i = 0; i < 5; i++) r.push(await s.write('a', { ops: [up(`u${i}`)], ts: ts() }));
      expect(r.map((x) => x.version)).toEqual([1, 2, 3, 4, 5]);
      expect(new Set(r.map((x) => x.epoch)).size).toBe(1);
      expect((await s.write('b', { ops: [up('x')], ts: ts() })).version).toBe(1);
      expect(await s.head('a')).toMatchObject({ version: 5, epoch: r[0]!.epoch });
    });

    it('records where a fact whose tenant is in its value was before each op (Change.was), outside the chain id', async () => {
      const s = await make();
      const inst = (key: string, tenant: string) => ({ op: 'upsert' as const, type: 'resource_instance', key, value: { tenant } });
      await s.write('w', { ops: [inst('doc:1', 'acme'), { op: 'upsert', type: 'doc', key: 'c', value: { tenant: 'glo"bex/\u00e9' } }, { op: 'upsert', type: 'doc', key: 'n', value: {} }], ts: ts() });
      // A move, a delete of a custom fact (an odd tenant key), one of a fact with no tenant, one of nothing, then one of what this change made.
      await s.write('w', { ops: [inst('doc:1', 'globex'), { op: 'delete', type: 'doc', key: 'c' }, { op: 'delete', type: 'doc', key: 'n' },
        { op: 'delete', type: 'doc', key: 'absent' }, inst('doc:2', 'initech'), { op: 'delete', type: 'resource_instance', key: 'doc:2' }, up('u')], ts: ts() });
      const page = await s.changes('w', 0, 10);
      if (page.truncated) throw new Error('the log was trimmed');
      const [first, second] = page.changes.map((c) => JSON.parse(c.json) as { was?: Record<string, string | null>; id: string; ts: string; ops: unknown[] });
      expect(first!.was).toBeUndefined();
      expect(second!.was).toEqual({ 0: 'acme', 1: 'glo"bex/\u00e9', 2: null, 5: 'initech' });
      expect(chainId(GENESIS_ID, 1, first!.ts, JSON.stringify(first!.ops))).toBe(first!.id);
      expect(chainId(first!.id, 2, second!.ts, JSON.stringify(second!.ops))).toBe(second!.id);
    });

    it('concurrent writes get distinct consecutive versions', async () => {
      const s = await make();
      const r = await Promise.all(Array.from({ length: 50 }, (_, i) => s.write('c', { ops: [up(`u${i}`)], ts: ts() })));
      expect(r.map((x) => x.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it('applies ops in order within a version and keeps the snapshot consistent with the log', async () => {
      const s = await make();
      await s.write('d', { ops: [up('k', { a: 1 }), up('k', { a: 2 }), up('gone')], ts: ts() });
      await s.write('d', { ops: [{ op: 'delete', type: 'user', key: 'gone' }, { op: 'upsert', type: 'doc', key: 'x:y', value: { nested: { deep: [1, 2] } } }], ts: ts() });
      const snap = await s.snapshot('d');
      expect(snap.version).toBe(2);
      const facts = snap.facts.map((f) => ({ type: f.type, key: f.key, value: JSON.parse(f.valueJson) })).sort((a, b) => a.key.localeCompare(b.key));
      expect(facts).toEqual([{ type: 'user', key: 'k', value: { a: 2 } }, { type: 'doc', key: 'x:y', value: { nested: { deep: [1, 2] } } }]);
      const page = await s.changes('d', 0, 10);
      expect(page.truncated).toBe(false);
      if (page.truncated) return;
      const changes = page.changes.map((c) => JSON.parse(c.json));
      expect(changes.map((c) => c.version)).toEqual([1, 2]);
      expect(changes[1].ops[0]).toEqual({ op: 'delete', type: 'user', key: 'gone' });
    });

    it('reads changes after V in pages, and reports log_truncated once the log is trimmed past V+1', async () => {
      const s = await make();
      for (let i = 0; i < RETENTION + 10; i++) await s.write('t', { ops: [up(`u${i}`)], ts: ts() });
      const head = RETENTION + 10;
      const page = await s.changes('t', head - 5, 3);
      expect(page.truncated).toBe(false);
      if (!page.truncated) expect(page.changes.map((c) => c.version)).toEqual([head - 4, head - 3, head - 2]);
      expect((await s.changes('t', head - RETENTION, 100)).truncated).toBe(false);
      expect(await s.changes('t', head - RETENTION - 1, 100)).toMatchObject({ truncated: true, head });
      expect(await s.changes('t', 0, 100)).toMatchObject({ truncated: true, head });
      expect(await s.changes('t', head, 100)).toMatchObject({ truncated: false, head, changes: [] });
    });

    it('an idempotency key returns the first version and applies nothing the second time', async () => {
      const s = await make();
      const a = await s.write('i', { ops: [up('k', { v: 1 })], ts: ts(), idempotencyKey: 'key-1' });
      const b = await s.write('i', { ops: [up('k', { v: 1 })], ts: ts(), idempotencyKey: 'key-1' });
      expect(a).toMatchObject({ version: 1, duplicate: false });
      expect(b).toMatchObject({ version: 1, duplicate: true });
      expect((await s.head('i')).version).toBe(1);
      expect(JSON.parse((await s.snapshot('i')).facts[0]!.valueJson)).toEqual({ v: 1 });
      expect((await s.write('i', { ops: [up('k')], ts: ts(), idempotencyKey: 'key-2' })).version).toBe(2);
    });

    it('source positions: recorded with the write, a position not after it applies nothing, one without ops makes no version', async () => {
      const s = await make();
      const src = (position: string) => ({ name: 'crm', position });
      await s.ensureEpoch('src');
      // A heartbeat before any version: recorded at version 0.
      expect(await s.write('src', { ops: [], ts: ts(), source: src('0000000000000010.0000') })).toMatchObject({ version: 0, duplicate: false, positionOnly: true });
      const a = await s.write('src', { ops: [up('k', { v: 1 })], ts: ts(), source: src('0000000000000020.0000') });
      expect(a).toMatchObject({ version: 1, duplicate: false });
      // The same position again, and an older one: nothing applied, the recorded version answered.
      expect(await s.write('src', { ops: [up('k', { v: 2 })], ts: ts(), source: src('0000000000000020.0000') })).toMatchObject({ version: 1, duplicate: true });
      expect(await s.write('src', { ops: [up('k', { v: 3 })], ts: ts(), source: src('000000000000001F.0009') })).toMatchObject({ version: 1, duplicate: true });
      expect(JSON.parse((await s.fact('src', 'user', 'k')).valueJson!)).toEqual({ v: 1 });
      // Bytewise order: "A" (0x41) is after "9" (0x39), and a longer position after its own prefix.
      expect((await s.write('src', { ops: [up('k', { v: 4 })], ts: ts(), source: src('00000000000000A0.0000') })).version).toBe(2);
      expect((await s.write('src', { ops: [up('k', { v: 5 })], ts: ts(), source: src('00000000000000A0.00001') })).version).toBe(3);
      // A heartbeat after the last change: the position moves, the version does not.
      expect(await s.write('src', { ops: [], ts: ts(), source: src('00000000000000B0.0000') })).toMatchObject({ version: 3, positionOnly: true });
      expect((await s.head('src')).version).toBe(3);
      // Another source keeps its own position; a write without a source is unaffected.
      expect((await s.write('src', { ops: [up('h')], ts: ts(), source: { name: 'catalog', position: '1' } })).version).toBe(4);
      expect((await s.write('src', { ops: [up('h2')], ts: ts() })).version).toBe(5);
      const listed = await s.sources('src');
      expect(listed.map(({ updatedAt, ...r }) => r)).toEqual([
        { name: 'catalog', position: '1', version: 4 },
        { name: 'crm', position: '00000000000000B0.0000', version: 3 },
      ]);
      expect(Number.isNaN(Date.parse(listed[0]!.updatedAt))).toBe(false);
      // In a group: the replay refuses only itself.
      const group = await s.writeMany('src', [
        { ops: [up('g1')], ts: ts(), source: src('00000000000000C0.0000') },
        { ops: [up('g2')], ts: ts(), source: src('00000000000000C0.0000') },
        { ops: [up('g3')], ts: ts(), source: src('00000000000000C1.0000') },
      ]);
      expect(group.map((r) => r.ok && [r.outcome.version, r.outcome.duplicate])).toEqual([[6, false], [6, true], [7, false]]);
      expect((await s.sources('src')).find((r) => r.name === 'crm')).toMatchObject({ position: '00000000000000C1.0000', version: 7 });
      expect(await s.sources('nothing-here')).toEqual([]);
    });

    it('producer sequences: a retry returns its first version, out-of-order numbers inside the window apply, older ones are refused', async () => {
      const s = await make();
      const w = (seq: number, v: number, id = 'agent-1.boot') => s.writeMany('pr', [{ ops: [up(`k${seq}`, { v })], ts: ts(), producer: { id, seq } }]);
      const one = (r: WriteResult) => (r.ok ? r.outcome : r.error);
      const ok = (r: WriteResult[]) => one(r[0]!);
      expect(ok(await w(1, 1))).toMatchObject({ version: 1, duplicate: false });
      expect(ok(await w(3, 1))).toMatchObject({ version: 2, duplicate: false });
      expect(ok(await w(2, 1))).toMatchObject({ version: 3, duplicate: false }); // arrived late, never seen: applied
      expect(ok(await w(3, 1))).toMatchObject({ version: 2, duplicate: true }); // a retry
      expect(ok(await w(3, 2))).toMatchObject({ code: 'idempotency_key_reused' }); // same number, other write
      expect(ok(await w(1, 1, 'agent-2.boot'))).toMatchObject({ version: 4, duplicate: false }); // another producer
      // A group: a retry, a new one and a reuse side by side, each answered for itself.
      const g = await s.writeMany('pr', [
        { ops: [up('k1', { v: 1 })], ts: ts(), producer: { id: 'agent-1.boot', seq: 1 } },
        { ops: [up('k4', { v: 1 })], ts: ts(), producer: { id: 'agent-1.boot', seq: 4 } },
        { ops: [up('k2', { v: 9 })], ts: ts(), producer: { id: 'agent-1.boot', seq: 2 } },
      ]);
      expect(g.map(one)).toMatchObject([{ version: 1, duplicate: true }, { version: 5, duplicate: false }, { code: 'idempotency_key_reused' }]);
      // Far ahead: numbers that fell out of the window are refused, not written twice.
      expect(ok(await w(4 + PRODUCER_WINDOW, 1))).toMatchObject({ version: 6 });
      expect(ok(await w(4, 1))).toMatchObject({ code: 'producer_seq_too_old' });
      expect(ok(await w(5, 1))).toMatchObject({ version: 7, duplicate: false }); // inside the window, unseen
      expect((await s.head('pr')).version).toBe(7);
    });

    it('chains every change to the one before (invariant 9) and reports the head id', async () => {
      const s = await make();
      const t = ts();
      await s.write('ch', { ops: [up('a')], ts: t });
      await s.write('ch', { ops: [up('b', { x: [1, 'two'] })], ts: t });
      const page = await s.changes('ch', 0, 10);
      expect(page.truncated).toBe(false);
      if (page.truncated) return;
      let prev = GENESIS_ID;
      for (const c of page.changes) {
        const parsed = JSON.parse(c.json) as { version: number; id: string; ts: string; ops: unknown };
        expect(parsed.id).toBe(chainId(prev, parsed.version, parsed.ts, JSON.stringify(parsed.ops)));
        expect(idOfChangeJson(c.json)).toBe(parsed.id);
        prev = parsed.id;
      }
      expect((await s.head('ch')).id).toBe(prev);
      expect((await s.snapshot('ch')).id).toBe(prev);
    });

    it('binds an idempotency key to its request: a different body is idempotency_key_reused', async () => {
      const s = await make();
      expect((await s.write('ik', { ops: [up('k', { n: 1 })], ts: ts(), idempotencyKey: 'key-1' })).version).toBe(1);
      expect(await s.write('ik', { ops: [up('k', { n: 1 })], ts: ts(), idempotencyKey: 'key-1' })).toMatchObject({ version: 1, duplicate: true });
      const e = await s.write('ik', { ops: [up('k', { n: 2 })], ts: ts(), idempotencyKey: 'key-1' }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(FactsyncError);
      expect(e).toMatchObject({ code: 'idempotency_key_reused', status: 422, details: { version: 1 } });
      expect((await s.head('ik')).version).toBe(1);
    });

    it('group commit: writes in order, each its own consecutive chained version, one doorbell for the group', async () => {
      const s = await make();
      await s.write('g', { ops: [up('before')], ts: ts() });
      const events: EnvEvent[] = [];
      const unsub = await s.subscribe('g', (e) => events.push(e));
      const t = ts();
      const results = await s.writeMany('g', [
        { ops: [up('a', { n: 1 })], ts: t },
        { ops: [up('a', { n: 2 }), up('b')], ts: t },
        { ops: [{ op: 'delete', type: 'user', key: 'before' }], ts: t },
      ]);
      expect(results.map((r) => (r.ok ? r.outcome.version : r.error.code))).toEqual([2, 3, 4]);
      expect(results.every((r) => r.ok && !r.outcome.duplicate)).toBe(true);
      // Later writes see earlier ones: the state is what applying them in order gives.
      const snap = await s.snapshot('g');
      expect(snap.version).toBe(4);
      expect(snap.facts.map((f) => [f.key, JSON.parse(f.valueJson)]).sort()).toEqual([['a', { n: 2 }], ['b', { n: 1 }]]);
      const page = await s.changes('g', 0, 10);
      if (page.truncated) throw new Error('truncated');
      let prev = GENESIS_ID;
      for (const c of page.changes) {
        const parsed = JSON.parse(c.json) as { version: number; id: string; ts: string; ops: unknown };
        expect(parsed.id).toBe(chainId(prev, parsed.version, parsed.ts, JSON.stringify(parsed.ops)));
        prev = parsed.id;
      }
      expect((await s.head('g')).id).toBe(prev);
      await waitUntil(() => events.length >= 1, 'the doorbell of the group');
      await new Promise((r) => setTimeout(r, 50));
      expect(events).toEqual([{ version: 4, epoch: snap.epoch }]);
      await unsub();
    });

    it('group commit: idempotency inside a group, and a refused write refuses only itself', async () => {
      const s = await make();
      const t = ts();
      const results = await s.writeMany('gi', [
        { ops: [up('x', { n: 1 })], ts: t, idempotencyKey: 'k1' },
        { ops: [up('x', { n: 1 })], ts: t, idempotencyKey: 'k1' }, // a retry within the group: the first version
        { ops: [up('x', { n: 9 })], ts: t, idempotencyKey: 'k1' }, // the same key, another body: refused, alone
        { ops: [up('y')], ts: t },
        { ops: [up('z')], ts: t, idempotencyKey: 'k2' },
      ]);
      expect(results[0]).toEqual({ ok: true, outcome: expect.objectContaining({ version: 1, duplicate: false }) });
      expect(results[1]).toEqual({ ok: true, outcome: expect.objectContaining({ version: 1, duplicate: true }) });
      expect(results[2]!.ok).toBe(false);
      if (!results[2]!.ok) expect(results[2]!.error).toMatchObject({ code: 'idempotency_key_reused', status: 422 });
      expect(results[3]).toEqual({ ok: true, outcome: expect.objectContaining({ version: 2, duplicate: false }) });
      expect(results[4]).toEqual({ ok: true, outcome: expect.objectContaining({ version: 3, duplicate: false }) });
      expect((await s.head('gi')).version).toBe(3);
      const snap = await s.snapshot('gi');
      expect(snap.facts.find((f) => f.key === "x")!.valueJson).toBe(JSON.stringify({ n: 1 }));
      // A later lone retry of k2 is a replay of version 3.
      expect(await s.write('gi', { ops: [up('z')], ts: ts(), idempotencyKey: 'k2' })).toMatchObject({ version: 3, duplicate: true });
    });

    it('ensureEpoch creates an epoch for an empty env once', async () => {
      const s = await make();
      const a = await s.ensureEpoch('n');
      const b = await s.ensureEpoch('n');
      expect(a.version).toBe(0);
      expect(a.epoch).toBeTruthy();
      expect(b.epoch).toBe(a.epoch);
      expect((await s.write('n', { ops: [up('k')], ts: ts() })).epoch).toBe(a.epoch);
    });

    it('a scan with writes between its steps, plus the log from its first head to its last, is exactly the state at the end', async () => {
      const s = await factories[kind]!({ logRetention: 100_000 });
      stores.push(s);
      // Large enough that Redis encodes it as a hash table and HSCAN takes many steps.
      for (let i = 0; i < 6; i++) await s.write('scan', { ops: Array.from({ length: 500 }, (_, j) => up(`u${i * 500 + j}`, { v: 0 })), ts: ts() });
      const base = await s.head('scan');
      const facts = new Map<string, string>();
      let cursor = '0';
      let steps = 0;
      let n = 0;
      do {
        const step = await s.scanState('scan', cursor, 100);
        for (const f of step.facts) facts.set(`${f.type}\u0000${f.key}`, f.valueJson);
        cursor = step.cursor;
        steps++;
        // Between steps: updates, deletes (of keys scanned and not yet), and new keys.
        const k = (steps * 7919) % 3000;
        await s.write('scan', { ops: [up(`u${k}`, { v: steps }), { op: 'delete', type: 'user', key: `u${(k + 1500) % 3000}` }, up(`new${n++}`, { v: steps })], ts: ts() });
      } while (cursor !== '0');
      expect(steps).toBeGreaterThan(5);
      const end = await s.headWithCount('scan');
      for (let at = base.version; at < end.version;) {
        const page = await s.changes('scan', at, 1000);
        expect(page.truncated).toBe(false);
        if (page.truncated) break;
        for (const c of page.changes) {
          for (const op of (JSON.parse(c.json) as { ops: { op: string; type: string; key: string; value?: unknown }[] }).ops) {
            if (op.op === 'upsert') facts.set(`${op.type}\u0000${op.key}`, JSON.stringify(op.value));
            else facts.delete(`${op.type}\u0000${op.key}`);
          }
          at = c.version;
        }
      }
      const snap = await s.snapshot('scan');
      expect(snap.version).toBe(end.version);
      expect(end.facts).toBe(snap.facts.length);
      const exact = new Map(snap.facts.map((f) => [`${f.type}\u0000${f.key}`, f.valueJson]));
      expect(facts.size).toBe(exact.size);
      for (const [k, v] of exact) expect(JSON.parse(facts.get(k) ?? 'null'), k).toEqual(JSON.parse(v));
    });

    it('a scan of a missing env is empty and creates nothing', async () => {
      const s = await make();
      expect(await s.scanState('nothing-here', '0', 100)).toEqual({ cursor: '0', facts: [] });
      expect(await s.headWithCount('nothing-here')).toMatchObject({ version: 0, epoch: null, facts: 0 });
      expect(await s.envs(100)).not.toContain('nothing-here');
    });

    it('a scan of one type returns that type only (keys that start like another type included), and reads one fact with its head', async () => {
      const s = await make();
      const ops = [
        ...Array.from({ length: 300 }, (_, i) => up(`u${i}`, { i })),
        ...Array.from({ length: 200 }, (_, i) => ({ op: 'upsert' as const, type: 'user_group', key: `g${i}`, value: { i } })),
        { op: 'upsert' as const, type: 'tenant', key: 'user:x', value: {} },
      ];
      await s.write('typed', { ops, ts: ts() });
      const seen = new Map<string, string>();
      let cursor = '0';
      do {
        const step = await s.scanState('typed', cursor, 50, 'user');
        cursor = step.cursor;
        for (const f of step.facts) seen.set(`${f.type}:${f.key}`, f.valueJson);
      } while (cursor !== '0');
      expect([...seen.keys()].sort()).toEqual(Array.from({ length: 300 }, (_, i) => `user:u${i}`).sort());
      expect(JSON.parse(seen.get('user:u7')!)).toEqual({ i: 7 });

      const h = await s.head('typed');
      expect(await s.fact('typed', 'user', 'u7')).toEqual({ ...h, valueJson: '{"i":7}' });
      expect(await s.fact('typed', 'user', 'nobody')).toEqual({ ...h, valueJson: null });
      expect(await s.fact('missing-env', 'user', 'u7')).toMatchObject({ version: 0, epoch: null, valueJson: null });
      expect(await s.envs(100)).not.toContain('missing-env');
    });

    it('keeps keys with unusual characters intact', async () => {
      const s = await make();
      const keys = ['a:b:c', 'ü/ß#x@y$z', 'x'.repeat(512), 'with space', '{}[]"\\'];
      await s.write('u', { ops: keys.map((k) => up(k, { k })), ts: ts() });
      const snap = await s.snapshot('u');
      expect(snap.facts.map((f) => f.key).sort()).toEqual([...keys].sort());
      for (const f of snap.facts) expect(JSON.parse(f.valueJson)).toEqual({ k: f.key });
    });

    it('an idempotency key is forgotten after its TTL', async () => {
      let now = 1_000_000;
      const s = await factories[kind]!({ idempotencyTtlSeconds: 1, now: () => now });
      stores.push(s);
      expect((await s.write('ttl', { ops: [up('k')], ts: ts(), idempotencyKey: 'x' })).version).toBe(1);
      expect((await s.write('ttl', { ops: [up('k')], ts: ts(), idempotencyKey: 'x' })).version).toBe(1);
      now += 1001; // the memory store's clock; Redis expires the key in real time
      await waitUntil(async () => (await s.write('ttl', { ops: [up('k')], ts: ts(), idempotencyKey: 'x' })).version === 2, 'the key to expire', 5000, 100);
      expect((await s.head('ttl')).version).toBe(2);
    });
  });

  describe('the event bus (EventBus)', () => {
    it('publishes one doorbell per version, inline when small and bare when large', async () => {
      const s = await make();
      const events: EnvEvent[] = [];
      const unsub = await s.subscribe('p', (e) => events.push(e));
      await s.write('p', { ops: [up('small')], ts: ts() });
      await s.write('p', { ops: [up('big', { blob: 'x'.repeat(INLINE * 2) })], ts: ts() });
      await waitUntil(() => events.length === 2, 'two doorbells');
      const [a, b] = events;
      expect(a!.version).toBe(1);
      expect(JSON.parse(a!.change!)).toMatchObject({ version: 1, ops: [up('small')] });
      expect(b).toEqual({ version: 2, epoch: (await s.head('p')).epoch });
      expect(a!.epoch).toBe(b!.epoch);
      await unsub();
    });

    it('group commit: a group that fits the inline budget rings once with its changes inline, in order', async () => {
      const s = await factories[kind]!({ inlineChangeBytes: 4096 });
      stores.push(s);
      const events: EnvEvent[] = [];
      const unsub = await s.subscribe('gin', (e) => events.push(e));
      const t = ts();
      await s.writeMany('gin', [{ ops: [up('a')], ts: t }, { ops: [up('b')], ts: t }, { ops: [up('c')], ts: t }]);
      await waitUntil(() => events.length >= 1, 'the doorbell of the group');
      const ev = events[0]!;
      expect(ev.version).toBe(3);
      expect(ev.changes!.map((c) => JSON.parse(c) as { version: number; ops: { key: string }[] }).map((c) => [c.version, c.ops[0]!.key])).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
      const page = await s.changes('gin', 0, 10);
      if (page.truncated) throw new Error('truncated');
      expect(ev.changes).toEqual(page.changes.map((c) => c.json));
      await unsub();
    });
  });

  describe('the session registry (SessionRegistry)', () => {
    it('judges a hello: resume, new, other epoch, ahead, forked', async () => {
      const s = await make();
      await s.write('v', { ops: [up('a')], ts: ts() });
      await s.write('v', { ops: [up('b')], ts: ts() });
      const head = await s.head('v');
      const page = await s.changes('v', 0, 10);
      const id1 = page.truncated ? '' : idOfChangeJson(page.changes[0]!.json)!;
      const r = (applied: number, epoch: string | null, appliedId: string | null) => s.resume('v', { applied, epoch, appliedId });
      expect((await r(1, head.epoch, id1)).verdict).toBe('resume');
      expect((await r(2, head.epoch, head.id)).verdict).toBe('resume');
      expect((await r(0, head.epoch, null)).verdict).toBe('resume');
      expect((await r(0, null, null)).verdict).toBe('new');
      expect((await r(1, 'another-epoch', id1)).verdict).toBe('other_epoch');
      expect((await r(3, head.epoch, 'x')).verdict).toBe('ahead');
      expect((await r(1, head.epoch, 'f'.repeat(40))).verdict).toBe('forked');
      expect((await r(2, head.epoch, id1)).verdict).toBe('forked');
    });

    it('one live session per agent id: a newer one replaces it, only its acks count, and it is awaited from hello.applied', async () => {
      const s = await make();
      const control: ControlEvent[] = [];
      await s.subscribeControl('g', (e) => control.push(e));
      for (let i = 0; i < 3; i++) await s.write('g', { ops: [up(`k${i}`)], ts: ts() });
      const head = await s.head('g');
      const open = (session: string, applied: number, appliedId: string | null) => s.openSession('g', {
        id: 'a1', session, replica: 'r1', leaseMs: 60_000, addr: `10.0.0.1:${session}`, resume: { applied, epoch: head.epoch, appliedId },
      });
      const page = await s.changes('g', 0, 10);
      const idAt = (v: number) => (page.truncated ? '' : idOfChangeJson(page.changes[v - 1]!.json)!);
      const first = await open('c1', 1, idAt(1));
      expect(first).toMatchObject({ version: 3, verdict: 'resume', since: 1, applied: 1, replaced: null });
      await s.recordAcks('g', [{ id: 'a1', session: 'c1', version: 3, chainId: idAt(3) }]);
      await s.recordAcks('g', [{ id: 'a1', session: 'c1', version: 2, chainId: idAt(2) }]); // cumulative: never lowers
      expect((await s.agents('g'))[0]).toMatchObject({ id: 'a1', session: 'c1', applied: 3, since: 1, connected: true, present: true, replica: 'r1' });

      // A second socket with the same id (a restarted agent, or a twin) at version 1.
      const second = await open('c2', 1, idAt(1));
      expect(second.replaced).toEqual({ session: 'c1', replica: 'r1', addr: '10.0.0.1:c1' });
      let [rec] = await s.agents('g');
      expect(rec).toMatchObject({ session: 'c2', applied: 1, since: 1 });
      await s.recordAcks('g', [{ id: 'a1', session: 'c1', version: 3, chainId: idAt(3) }]); // the replaced one's ack
      expect((await s.agents('g'))[0]!.applied).toBe(1);
      expect(await s.renewSessions('g', [['a1', 'c1']], 60_000)).toEqual(['a1']);
      expect(await s.renewSessions('g', [['a1', 'c2']], 60_000)).toEqual([]);
      await s.endSession('g', 'a1', 'c1', false, 60_000); // an old socket's late close must not end the new session
      expect((await s.agents('g'))[0]!.connected).toBe(true);

      // An ack whose chain id is not this history's does not count (a rewound store, invariant 9).
      await s.recordAcks('g', [{ id: 'a1', session: 'c2', version: 2, chainId: 'not-this-history' }]);
      expect((await s.agents('g'))[0]!.applied).toBe(0);
      await s.recordAcks('g', [{ id: 'a1', session: 'c2', version: 3, chainId: idAt(3) }]);
      expect((await s.agents('g'))[0]!.applied).toBe(3);

      // An unclean end keeps it present (awaited) for its lease; a goodbye does not.
      await s.endSession('g', 'a1', 'c2', false, 60_000);
      [rec] = await s.agents('g');
      expect(rec).toMatchObject({ connected: false, present: true });
      const third = await open('c3', 0, null);
      expect(third.replaced).toBeNull(); // the previous session had ended
      await s.endSession('g', 'a1', 'c3', true, 60_000);
      expect((await s.agents('g'))[0]).toMatchObject({ connected: false, present: false });
      // The waiting rules' cheaper read sees the same records as the listing (last-seen details aside).
      const strip = (r: { lastSeenMs: number }) => ({ ...r, lastSeenMs: 0 });
      expect((await s.syncStates('g')).map(strip)).toEqual((await s.agents('g')).map(strip));
      await waitUntil(() => control.filter((e) => e.type === 'join').length === 3, 'three join events');
      expect(control.find((e) => e.type === 'join')).toEqual({ type: 'join', agentId: 'a1', session: 'c1', replica: 'r1' });
    });

    it('a fresh agent is awaited from the head; a resuming one from its hello; a forked one gets no applied', async () => {
      const s = await make();
      for (let i = 0; i < 4; i++) await s.write('f', { ops: [up(`k${i}`)], ts: ts() });
      const head = await s.head('f');
      const base = { replica: 'r1', leaseMs: 60_000, addr: 'x' };
      expect(await s.openSession('f', { ...base, id: 'fresh', session: 's1', resume: { applied: 0, epoch: null, appliedId: null } }))
        .toMatchObject({ verdict: 'new', since: 4, applied: 0 });
      expect(await s.openSession('f', { ...base, id: 'forked', session: 's2', resume: { applied: 3, epoch: head.epoch, appliedId: 'f'.repeat(40) } }))
        .toMatchObject({ verdict: 'forked', since: 4, applied: 0 });
      expect(await s.openSession('f', { ...base, id: 'ahead', session: 's3', resume: { applied: 9, epoch: head.epoch, appliedId: 'x' } }))
        .toMatchObject({ verdict: 'ahead', since: 4, applied: 0 });
    });

    it('an agent whose lease is not renewed stops being present', async () => {
      const s = await make();
      const base = { replica: 'r1', leaseMs: 300, addr: 'x', resume: { applied: 0, epoch: null, appliedId: null } };
      await s.openSession('l', { ...base, id: 'a1', session: 'c1' });
      await s.openSession('l', { ...base, id: 'a2', session: 'c2' });
      const renew = setInterval(() => void s.renewSessions('l', [['a2', 'c2']], 300), 50);
      try {
        await waitUntil(async () => {
          const agents = await s.agents('l');
          return agents.find((a) => a.id === 'a1')?.present === false;
        }, 'lease of a1 to expire', 5000);
        expect((await s.agents('l')).find((a) => a.id === 'a2')).toMatchObject({ connected: true, present: true });
      } finally {
        clearInterval(renew);
      }
    });

    it('records of agents that left expire after AGENT_RECORD_TTL_MS', async () => {
      const s = await factories[kind]!({ agentRecordTtlMs: 1000 });
      stores.push(s);
      const base = { replica: 'r1', leaseMs: 60_000, addr: 'x', resume: { applied: 0, epoch: null, appliedId: null } };
      await s.openSession('ttl-a', { ...base, id: 'left', session: 'c1' });
      await s.openSession('ttl-a', { ...base, id: 'stays', session: 'c2' });
      await s.endSession('ttl-a', 'left', 'c1', true, 60_000);
      await waitUntil(async () => (await s.agents('ttl-a')).map((a) => a.id).join() === 'stays', 'the record of the agent that left to expire', 10_000, 200);
    });
  });

  describe('administration (EnvAdmin)', () => {
    it('lists the envs that have data', async () => {
      const s = await make();
      await s.write('env-b', { ops: [up('k')], ts: ts() });
      await s.write('env-a', { ops: [up('k')], ts: ts() });
      await s.ensureEpoch('env-c');
      expect(await s.envs(100)).toEqual(['env-a', 'env-b', 'env-c']);
      expect(await s.envs(1)).toEqual(['env-a']);
    });
  });

  describe('usage (UsageLedger)', () => {
    it('counts each user once per month, and reading usage creates nothing', async () => {
      const s = await make();
      await s.recordUsage('u', '2026-11', ['a', 'b']);
      await s.recordUsage('u', '2026-11', ['b', 'c', 'a']);
      await s.recordUsage('u', '2026-12', ['a']);
      expect(await s.usage('u', '2026-11')).toBe(3);
      expect(await s.usage('u', '2026-12')).toBe(1);
      expect(await s.usage('u', '2027-01')).toBe(0);
      expect(await s.usage('nobody', '2026-11')).toBe(0);
      expect(await s.envs(100)).not.toContain('nobody');
    });
  });
});

describe('producer windows in Redis', () => {
  it('one producer keeps at most PRODUCER_WINDOW sequence numbers, however many it writes, and expires with the idempotency TTL', async () => {
    const prefix = `pw${nanoid(6)}`;
    const s = await createRedisStore({ ...opts, idempotencyTtlSeconds: 3600, url: inject('redisUrl'), keyPrefix: prefix, commandTimeoutMs: 2000, log: testLogger() });
    const redis = new Redis(inject('redisUrl'));
    try {
      for (let seq = 1; seq <= 3 * PRODUCER_WINDOW; seq += 8) {
        await s.writeMany('w', Array.from({ length: 8 }, (_, j) => ({ ops: [up(`k${seq + j}`)], ts: ts(), producer: { id: 'a.1', seq: seq + j } })));
      }
      const key = `${prefix}:{w}:prod:a.1`;
      expect(await redis.hlen(key)).toBe(PRODUCER_WINDOW + 1); // the window and its max
      expect(await redis.ttl(key)).toBeGreaterThan(3000);
      // No key per write either.
      expect(await redis.keys(`${prefix}:{w}:idem:*`)).toEqual([]);
      // A jump far ahead forgets the old window in one bounded step.
      await s.writeMany('w', [{ ops: [up('far')], ts: ts(), producer: { id: 'a.1', seq: 1_000_000 } }]);
      expect(await redis.hlen(key)).toBe(2);
    } finally {
      redis.disconnect();
      await s.close();
    }
  });
});

describe('memory store scans', () => {
  it('an abandoned scan is dropped once too many are open; continuing it is a retryable error, not a bad request', async () => {
    const s = createMemoryStore({ ...opts });
    await s.write('m', { ops: [up('a'), up('b'), up('c')], ts: ts() });
    const first = await s.scanState('m', '0', 1);
    for (let i = 0; i < 256; i++) await s.scanState('m', '0', 1);
    await expect(s.scanState('m', first.cursor, 1)).rejects.toMatchObject({ code: 'store_unavailable' });
    // A fresh scan still works, whole.
    const keys: string[] = [];
    let cursor = '0';
    do {
      const step = await s.scanState('m', cursor, 1);
      keys.push(...step.facts.map((f) => f.key));
      cursor = step.cursor;
    } while (cursor !== '0');
    expect(keys.sort()).toEqual(['a', 'b', 'c']);
    await s.close();
  });
});
