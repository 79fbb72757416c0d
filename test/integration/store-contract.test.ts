import { afterAll, describe, expect, inject, it } from 'vitest';
import { nanoid } from 'nanoid';
import { createMemoryStore, createRedisStore, type EnvEvent, type FactStore } from '@factsync/server';
import { testLogger } from '../src/inproc.js';
import { startRedisCluster } from '../src/redis-cluster.js';
import { waitUntil } from '../src/wait.js';

/**
 * The FactStore contract. Both implementations must pass every case, so the
 * embedded store is a faithful stand-in for Redis in dev and in tests.
 */
const RETENTION = 20;
const INLINE = 200;
const opts = { logRetention: RETENTION, idempotencyTtlSeconds: 60, inlineChangeBytes: INLINE };

// One Redis Cluster for this file, started on first use.
let cluster: Promise<{ url: string; stop(): Promise<void> }> | undefined;
afterAll(async () => {
  await (await cluster)?.stop();
});

const factories: Record<string, (o?: Partial<typeof opts> & { now?: () => number }) => Promise<FactStore>> = {
  memory: async (o = {}) => createMemoryStore({ ...opts, ...o }),
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

  it('assigns versions 1, 2, 3 with no gap, per env, and creates the epoch with the first write', async () => {
    const s = await make();
    expect(await s.head('a')).toEqual({ version: 0, epoch: null });
    const r = [];
    for (let i = 0; i < 5; i++) r.push(await s.write('a', { ops: [up(`u${i}`)], ts: ts() }));
    expect(r.map((x) => x.version)).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(r.map((x) => x.epoch)).size).toBe(1);
    expect((await s.write('b', { ops: [up('x')], ts: ts() })).version).toBe(1);
    expect(await s.head('a')).toEqual({ version: 5, epoch: r[0]!.epoch });
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
    const b = await s.write('i', { ops: [up('k', { v: 2 })], ts: ts(), idempotencyKey: 'key-1' });
    expect(a).toMatchObject({ version: 1, duplicate: false });
    expect(b).toMatchObject({ version: 1, duplicate: true });
    expect((await s.head('i')).version).toBe(1);
    expect(JSON.parse((await s.snapshot('i')).facts[0]!.valueJson)).toEqual({ v: 1 });
    expect((await s.write('i', { ops: [up('k')], ts: ts(), idempotencyKey: 'key-2' })).version).toBe(2);
  });

  it('publishes one doorbell per version, inline when small and bare when large', async () => {
    const s = await make();
    const events: EnvEvent[] = [];
    const unsub = await s.subscribe('p', (e) => events.push(e));
    await s.write('p', { ops: [up('small')], ts: ts() });
    await s.write('p', { ops: [up('big', { blob: 'x'.repeat(INLINE * 2) })], ts: ts() });
    await waitUntil(() => events.filter((e) => e.t === 'change').length === 2, 'two doorbells');
    const [a, b] = events.filter((e): e is Extract<EnvEvent, { t: 'change' }> => e.t === 'change');
    expect(a!.v).toBe(1);
    expect(JSON.parse(a!.c!)).toMatchObject({ version: 1, ops: [up('small')] });
    expect(b).toEqual({ t: 'change', v: 2, e: (await s.head('p')).epoch });
    expect(a!.e).toBe(b!.e);
    await unsub();
  });

  it('tracks agents: connect, cumulative acks, presence events, disconnect by connection only', async () => {
    const s = await make();
    const events: EnvEvent[] = [];
    await s.subscribe('g', (e) => events.push(e));
    await s.write('g', { ops: [up('k')], ts: ts() });
    const c = await s.connectAgent('g', { id: 'a1', conn: 'c1', replica: 'r1', leaseMs: 60_000 });
    expect(c).toMatchObject({ version: 1, since: 1 });
    expect(c.epoch).toBe((await s.head('g')).epoch);
    await s.recordAcks('g', new Map([['a1', 1]]));
    await s.recordAcks('g', new Map([['a1', 0]])); // acks never go backwards
    let [rec] = await s.agents('g');
    expect(rec).toMatchObject({ id: 'a1', applied: 1, since: 1, connected: true, replica: 'r1' });
    expect(rec!.lastSeenMs).toBeGreaterThan(Date.now() - 60_000);

    await s.disconnectAgent('g', 'a1', 'stale-conn'); // an old socket's late close must not evict the new one
    expect((await s.agents('g'))[0]!.connected).toBe(true);
    await s.disconnectAgent('g', 'a1', 'c1');
    [rec] = await s.agents('g');
    expect(rec).toMatchObject({ id: 'a1', applied: 1, connected: false });
    await waitUntil(() => events.some((e) => e.t === 'presence' && !e.connected), 'disconnect event');
    expect(events.find((e) => e.t === 'presence' && e.connected)).toMatchObject({ id: 'a1', conn: 'c1', since: 1 });
    expect(events.find((e) => e.t === 'acks')).toEqual({ t: 'acks', a: { a1: 1 } });
  });

  it('an agent whose lease is not renewed stops counting as connected', async () => {
    const s = await make();
    await s.connectAgent('l', { id: 'a1', conn: 'c1', replica: 'r1', leaseMs: 300 });
    await s.connectAgent('l', { id: 'a2', conn: 'c2', replica: 'r1', leaseMs: 300 });
    const renew = setInterval(() => void s.renewLeases('l', ['a2'], 300), 50);
    try {
      await waitUntil(async () => {
        const agents = await s.agents('l');
        return agents.find((a) => a.id === 'a1')?.connected === false;
      }, 'lease of a1 to expire', 5000);
      expect((await s.agents('l')).find((a) => a.id === 'a2')?.connected).toBe(true);
    } finally {
      clearInterval(renew);
    }
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

  it('keeps keys with unusual characters intact', async () => {
    const s = await make();
    const keys = ['a:b:c', 'ü/ß#x@y$z', 'x'.repeat(512), 'with space', '{}[]"\\'];
    await s.write('u', { ops: keys.map((k) => up(k, { k })), ts: ts() });
    const snap = await s.snapshot('u');
    expect(snap.facts.map((f) => f.key).sort()).toEqual([...keys].sort());
    for (const f of snap.facts) expect(JSON.parse(f.valueJson)).toEqual({ k: f.key });
  });

  it('lists the envs that have data', async () => {
    const s = await make();
    await s.write('env-b', { ops: [up('k')], ts: ts() });
    await s.write('env-a', { ops: [up('k')], ts: ts() });
    await s.ensureEpoch('env-c');
    expect(await s.envs(100)).toEqual(['env-a', 'env-b', 'env-c']);
    expect(await s.envs(1)).toEqual(['env-a']);
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
