import { afterAll, describe, expect, inject, it } from 'vitest';
import { nanoid } from 'nanoid';
import { GroupCommit, createRedisStore, type FactStore, type WriteInput } from '@factsync/server';
import { FactsyncError } from '@factsync/shared';
import { ADMIN, newEnv, startServer, testLogger } from '../src/inproc.js';
import { client } from '../src/http.js';
import { startRedisServer } from '../src/redis.js';
import { Redis } from 'ioredis';

/**
 * Group commit (issue "The write path at the store's speed") on a real Redis:
 * concurrent writes to one env share store calls, yet each writer gets its
 * own version, holding exactly its own ops, and its own error.
 */
describe('group commit', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  async function counted(): Promise<{ store: FactStore; calls: number[] }> {
    const store = await createRedisStore({
      url: inject('redisUrl'), keyPrefix: `gc${nanoid(6)}`, logRetention: 10_000, idempotencyTtlSeconds: 60, inlineChangeBytes: 4096,
      commandTimeoutMs: 5000, log: testLogger(),
    });
    closers.push(() => store.close());
    const calls: number[] = [];
    const writeMany = store.writeMany.bind(store);
    return { store: { ...store, writeMany: (env: string, inputs: readonly WriteInput[]) => (calls.push(inputs.length), writeMany(env, inputs)) }, calls };
  }

  it('a lone write goes at once, alone; concurrent writes share calls, and each gets the version that holds its ops', async () => {
    const { store, calls } = await counted();
    const commit = new GroupCommit(store, { maxWrites: 64, maxOps: 1000 });
    const env = newEnv();
    expect((await commit.write(env, { ops: [{ op: 'upsert', type: 'doc', key: 'solo', value: {} }], ts: new Date().toISOString() })).version).toBe(1);
    expect(calls).toEqual([1]);

    const n = 300;
    const outcomes = await Promise.all(Array.from({ length: n }, (_, i) =>
      commit.write(env, { ops: [{ op: 'upsert', type: 'doc', key: `w${i}`, value: { i } }], ts: new Date().toISOString() })));
    const versions = outcomes.map((o) => o.version);
    expect(new Set(versions).size).toBe(n);
    expect(Math.min(...versions)).toBe(2);
    expect(Math.max(...versions)).toBe(n + 1);
    expect(calls.length).toBeLessThan(n / 4); // grouped
    expect(Math.max(...calls)).toBeLessThanOrEqual(64);
    // Writer i's version holds writer i's op, and the queue kept arrival order.
    const page = await store.changes(env, 1, 1000);
    if (page.truncated) throw new Error('truncated');
    const byVersion = new Map(page.changes.map((c) => [c.version, JSON.parse(c.json) as { ops: { key: string }[] }]));
    outcomes.forEach((o, i) => expect(byVersion.get(o.version)!.ops[0]!.key).toBe(`w${i}`));
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
  });

  it('a group stops before the ops budget; a refused write fails alone; a store failure fails its whole group', async () => {
    const { store, calls } = await counted();
    const commit = new GroupCommit(store, { maxWrites: 64, maxOps: 10 });
    const env = newEnv();
    const w = (key: string, n = 1, idempotencyKey?: string) =>
      commit.write(env, { ops: Array.from({ length: n }, (_, i) => ({ op: 'upsert' as const, type: 'doc', key: `${key}${i}`, value: {} })), ts: new Date().toISOString(), idempotencyKey });
    await w('first', 1, 'same');
    const results = await Promise.allSettled([w('a', 6), w('b', 6), w('c', 3), w('first', 2, 'same'), w('d', 1)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[3] as PromiseRejectedResult).reason).toBeInstanceOf(FactsyncError);
    expect((results[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'idempotency_key_reused' });
    // [first] alone, then a (6) alone since a+b > 10, then b+c(+ the refused one, + d): never more than 10 ops unless one write alone.
    expect(calls[0]).toBe(1);
    expect(calls.slice(1).reduce((x, y) => x + y, 0)).toBe(5);
    expect(calls.length).toBeGreaterThanOrEqual(3);

    await store.close();
    const failed = await Promise.allSettled([w('x'), w('y')]);
    expect(failed.every((r) => r.status === 'rejected')).toBe(true);
  });

  it('the server groups concurrent HTTP writes to one env (factsync_write_group_size) and answers each with its own version', async () => {
    // A Redis of its own, whose writes are paused while the requests arrive: on a loaded machine the
    // client (in this process) may otherwise send them slower than the store answers, and none overlap.
    const redis = await startRedisServer();
    closers.push(() => redis.stop());
    const server = await startServer({ redisUrl: redis.url });
    closers.push(() => server.close());
    const admin = client(server.url, ADMIN);
    const env = newEnv();
    await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'first', value: {} }] });
    const r = new Redis(redis.url);
    closers.push(async () => r.disconnect());
    await r.call('CLIENT', 'PAUSE', '300', 'WRITE');
    const answers = await Promise.all(Array.from({ length: 199 }, (_, i) =>
      admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: `h${i}`, value: { i } }] })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(new Set(answers.map((a) => a.body.version)).size).toBe(199);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const count = Number(/factsync_write_group_size_count (\d+)/.exec(metrics)?.[1]);
    const sum = Number(/factsync_write_group_size_sum (\d+)/.exec(metrics)?.[1]);
    expect(sum).toBe(200);
    expect(count).toBeLessThan(200);
  });
});
