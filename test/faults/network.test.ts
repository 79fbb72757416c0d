import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { Cluster, ADMIN } from '../src/cluster.js';
import { startWriters } from '../src/load-writers.js';
import { startRedisServer } from '../src/redis.js';
import { ChaosProxy } from '../src/chaos-proxy.js';
import { startServer, type RunningServer } from '../src/inproc.js';
import { SOAK_SCALE, sleep, waitUntil } from '../src/wait.js';

/**
 * The network misbehaves everywhere at once: agent sockets are cut at random
 * moments (half of the time in the middle of a chunk, tearing a frame), both
 * replicas lose pub/sub doorbells, and their Redis subscriptions are killed
 * (`CLIENT KILL TYPE pubsub`) over and over. Redis is this test's own, so the
 * kills touch no other test.
 */
describe('fault: torn sockets, lost doorbells, killed subscriptions', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('every agent still applies every version exactly once, in order', async () => {
    const redis = await startRedisServer();
    cleanups.push(() => redis.stop());
    const prefix = `n${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`;
    let dropped = 0;
    let rang = 0;
    const lossy = { dropEvent: () => ++rang > 0 && Math.random() < 0.15 && ++dropped > 0 };
    const servers: RunningServer[] = [];
    for (let i = 0; i < 2; i++) {
      const s = await startServer({ redisUrl: redis.url, keyPrefix: prefix, hooks: lossy, env: { HEAL_INTERVAL_MS: '150' } });
      servers.push(s);
      cleanups.push(() => s.close());
    }
    const cluster = new Cluster(redis.url);
    cleanups.push(() => cluster.stop());

    const proxies: ChaosProxy[] = [];
    const agents = [];
    for (let i = 0; i < 4; i++) {
      const target = new URL(servers[i % 2]!.url);
      const p = new ChaosProxy(Number(target.port));
      proxies.push(p);
      cleanups.push(() => p.close());
      agents.push(await cluster.startAgent(`n${i}`, [await p.listen()]));
    }
    await Promise.all(agents.map((a) => cluster.ready(a)));

    const killer = new Redis(redis.url);
    cleanups.push(() => killer.quit());
    let kills = 0;
    const killTimer = setInterval(() => void killer.call('CLIENT', 'KILL', 'TYPE', 'pubsub').then((n) => (kills += Number(n))).catch(() => undefined), 400);
    for (const p of proxies) p.startRandomCuts(40, 200);

    const writers = startWriters({ urls: servers.map((s) => s.url), env: cluster.env, token: ADMIN, writers: 3, pauseMs: 2 });
    await waitUntil(() => writers.count >= 400 * SOAK_SCALE, 'writes under chaos', 30_000 * SOAK_SCALE);
    const stats = await writers.stop();
    clearInterval(killTimer);
    for (const p of proxies) p.stopRandomCuts();
    await sleep(300);

    const result = await cluster.check(stats.records, servers[0]!.url);
    const cuts = proxies.reduce((n, p) => n + p.cuts, 0);
    const repaired = servers.reduce((n, s) => n + s.broadcaster.gapsRepaired, 0);
    console.log(`[network] ${JSON.stringify({ ...result, socketCuts: cuts, doorbellsRang: rang, doorbellsDropped: dropped, subscriptionKills: kills, gapsRepaired: repaired })}`);
    expect(cuts).toBeGreaterThan(20);
    // How many doorbells ring depends on how long the killed subscriptions take to come back on a busy
    // machine; what matters is that a real share of those that rang was lost.
    expect(dropped).toBeGreaterThan(5);
    expect(dropped / rang).toBeGreaterThan(0.05);
    expect(kills).toBeGreaterThan(2);
    expect(repaired).toBeGreaterThan(0);
  });
});
