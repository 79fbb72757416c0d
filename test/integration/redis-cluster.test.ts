import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { factsDigest } from '@factsync/shared';
import { ADMIN, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { startRedisCluster } from '../src/redis-cluster.js';
import { client, upsert } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/** Two replicas on a 3-master Redis Cluster: envs land on different shards and everything still holds. */
describe('Redis Cluster', () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
  const servers: RunningServer[] = [];
  const agents: Awaited<ReturnType<typeof startAgent>>[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
    const a = await startServer({ env: { REDIS_URL: cluster.url, REDIS_CLUSTER: 'true', KEY_PREFIX: 'rc' } });
    const b = await startServer({ env: { REDIS_URL: cluster.url, REDIS_CLUSTER: 'true', KEY_PREFIX: 'rc' } });
    servers.push(a, b);
  }, 60_000);
  afterAll(async () => {
    for (const x of agents) await x.close();
    for (const s of servers) await s.close();
    await cluster?.stop();
  });

  it('versions, fan-out, acks across replicas and snapshots work for envs on every shard', async () => {
    const envs = Array.from({ length: 6 }, () => newEnv());
    for (const [i, env] of envs.entries()) agents.push(await startAgent(servers[i % 2]!.url, { env: { AGENT_ENV: env, AGENT_ID: `c-${i}` } }));
    await waitUntil(() => agents.every((x) => x.status().ready), 'agents ready');
    for (let round = 0; round < 10; round++) {
      await Promise.all(envs.map((env, i) => client(servers[(i + round) % 2]!.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', `d${round % 3}`, { round })] })));
    }
    for (const [i, env] of envs.entries()) {
      // A waiter on the replica the agent is not connected to.
      const w = await client(servers[(i + 1) % 2]!.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'last', {})] }, { 'x-wait-for': 'all', 'x-wait-timeout': '10' });
      expect(w.body).toMatchObject({ version: 11, sync: { synced: true, acked: [`c-${i}`] } });
      const snap = (await client(servers[i % 2]!.url, ADMIN).get(`/v1/envs/${env}/snapshot`)).body;
      expect(agents[i]!.store.digest()).toBe(factsDigest(snap.facts));
    }
    const listed = (await client(servers[0]!.url, ADMIN).get('/v1/envs')).body.envs as string[];
    expect(listed).toEqual(expect.arrayContaining(envs));
  });
  it('an env\'s doorbells and control events use sharded pub/sub on its own shard, never a cluster-wide channel', async () => {
    const env = newEnv();
    agents.push(await startAgent(servers[0]!.url, { env: { AGENT_ENV: env, AGENT_ID: 'sharded' } }));
    await waitUntil(() => agents.at(-1)!.status().ready, 'agent ready');
    const w = await client(servers[1]!.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'd', {})] }, { 'x-wait-for': 'all', 'x-wait-timeout': '10' });
    expect(w.body.sync.synced).toBe(true);
    const nodes = cluster.url.split(',').map((u) => new URL(u));
    const channels = [`rc:{${env}}:events`, `rc:{${env}}:ctl`];
    let sharded = 0;
    for (const n of nodes) {
      const r = new Redis({ host: n.hostname, port: Number(n.port), lazyConnect: true });
      await r.connect();
      try {
        const classic = (await r.call('PUBSUB', 'NUMSUB', ...channels)) as (string | number)[];
        expect(classic.filter((_, i) => i % 2 === 1).map(Number)).toEqual([0, 0]);
        const shard = (await r.call('PUBSUB', 'SHARDNUMSUB', ...channels)) as (string | number)[];
        sharded += shard.filter((_, i) => i % 2 === 1).map(Number).reduce((a, b) => a + b, 0);
      } finally {
        r.disconnect();
      }
    }
    // Both replicas subscribe to both channels of the env (a feed and a control view each), on the shard.
    expect(sharded).toBeGreaterThanOrEqual(2);
  });
});
