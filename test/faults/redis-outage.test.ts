import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, ADMIN } from '../src/cluster.js';
import { startWriters } from '../src/load-writers.js';
import { startRedisServer } from '../src/redis.js';
import { client } from '../src/http.js';
import { SOAK_SCALE, sleep, waitUntil } from '../src/wait.js';

/**
 * Redis goes away under concurrent writers: restarted (kill -9, with AOF
 * fsync always), and separately frozen (unreachable) for a few seconds. Writes
 * during the outage get 503 store_unavailable with Retry-After, never a hang
 * or a 500; replicas and agents recover without a restart, and every
 * acknowledged write is still there.
 */
describe('fault: Redis outages', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  async function setup() {
    const dir = await mkdtemp(join(tmpdir(), 'factsync-redis-'));
    let redis = await startRedisServer({ appendonly: true, dir });
    cleanups.push(() => redis.stop());
    const cluster = new Cluster(redis.url);
    cleanups.push(() => cluster.stop());
    const [r1, r2] = await cluster.startServers(2);
    const agents = await Promise.all([0, 1, 2].map((i) => cluster.startAgent(`o${i}`, i % 2 ? [r2!.url, r1!.url] : [r1!.url, r2!.url])));
    await Promise.all(agents.map((a) => cluster.ready(a)));
    const restart = async () => {
      redis = await startRedisServer({ appendonly: true, dir, port: redis.port });
    };
    return { cluster, r1: r1!, r2: r2!, agents, redis: () => redis, restart };
  }

  it('Redis killed and restarted with AOF: 503s during the outage, then everything acknowledged is there', async () => {
    const { cluster, r1, r2, redis, restart } = await setup();
    const epoch = (await client(r1.url, ADMIN).get(`/v1/envs/${cluster.env}/head`)).body.epoch;
    const writers = startWriters({ urls: [r1.url, r2.url], env: cluster.env, token: ADMIN, writers: 3, requestTimeoutMs: 8000 });
    await waitUntil(() => writers.count >= 100 * SOAK_SCALE, 'writes before the outage', 20_000 * SOAK_SCALE);
    redis().process.kill('SIGKILL');
    await sleep(1500);
    const during = { ...writers.stats.statuses };
    await restart();
    const after = writers.count;
    await waitUntil(() => writers.count >= after + 100 * SOAK_SCALE, 'writes after the restart', 20_000 * SOAK_SCALE);
    const stats = await writers.stop();

    expect(during[503] ?? 0).toBeGreaterThan(0);
    expect(stats.statuses[500] ?? 0).toBe(0);
    expect(stats.missingRetryAfter).toBe(0);
    expect(stats.hangs).toBe(0);
    const head = await client(r2.url, ADMIN).get(`/v1/envs/${cluster.env}/head`);
    expect(head.body.epoch).toBe(epoch); // AOF kept the data: same epoch, no resync from scratch
    const result = await cluster.check(stats.records, r2.url);
    console.log(`[redis-restart] ${JSON.stringify({ ...result, statuses: stats.statuses })}`);
    expect((await client(r1.url).get('/readyz')).status).toBe(200);
  });

  it('Redis unreachable (frozen) for 2 s: writes get 503 quickly, then recover', async () => {
    const { cluster, r1, r2, redis } = await setup();
    const writers = startWriters({ urls: [r1.url, r2.url], env: cluster.env, token: ADMIN, writers: 3, requestTimeoutMs: 8000 });
    await waitUntil(() => writers.count >= 100 * SOAK_SCALE, 'writes before the outage', 20_000 * SOAK_SCALE);
    redis().process.kill('SIGSTOP');
    await sleep(2000);
    const ready = await client(r1.url).get('/readyz');
    const during = { ...writers.stats.statuses };
    redis().process.kill('SIGCONT');
    const after = writers.count;
    await waitUntil(() => writers.count >= after + 100 * SOAK_SCALE, 'writes after the outage', 20_000 * SOAK_SCALE);
    const stats = await writers.stop();

    expect(ready.status).toBe(503);
    expect(ready.body.error).toBe('store_unavailable');
    expect(during[503] ?? 0).toBeGreaterThan(0);
    expect(stats.statuses[500] ?? 0).toBe(0);
    expect(stats.missingRetryAfter).toBe(0);
    expect(stats.hangs).toBe(0);
    const result = await cluster.check(stats.records, r2.url);
    console.log(`[redis-frozen] ${JSON.stringify({ ...result, statuses: stats.statuses })}`);
  });
});
