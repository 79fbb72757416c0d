import { afterEach, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Broadcaster, createMemoryStore } from '@factsync/server';
import type { ChangeBatch, FeedMember } from '../../server/src/broadcast/env-feed.js';
import { ADMIN, AGENT, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { RawAgent } from '../src/raw-agent.js';
import { client, upsert } from '../src/http.js';
import { scaled, sleep, waitUntil } from '../src/wait.js';
import { startRedisServer } from '../src/redis.js';
import { laggingReplicaPair } from '../src/failover.js';

/**
 * Invariants 8 and 9, each scenario of the issue "Synced means applied" as a
 * test against real Redis and raw websocket agents. Each of them failed on the
 * control plane before the redesign.
 */
const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers.length = 0;
});

async function server(opts: Parameters<typeof startServer>[0] = {}): Promise<RunningServer> {
  const s = await startServer({ redisUrl: inject('redisUrl'), ...opts });
  closers.push(() => s.close());
  return s;
}
async function raw(url: string, hello: Record<string, unknown>): Promise<RawAgent> {
  const a = await RawAgent.connect(url, AGENT, { type: 'hello', ...hello });
  closers.push(() => a.close());
  return a;
}
const welcomeOf = (a: RawAgent) => a.messages.find((m) => m.type === 'welcome') as { epoch: string } | undefined;
const idOf = (a: RawAgent, v: number): string | undefined => {
  for (const m of a.messages) if (m.type === 'changes') for (const c of m.changes) if (c.version === v) return c.id;
  return undefined;
};
const write = (url: string, env: string, key: string, headers: Record<string, string> = {}) =>
  client(url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', key, { key })] }, headers);

describe('synced means applied (invariant 8)', () => {
  it('a socket blip does not release a waiter: the agent is awaited from its hello.applied until it acks', async () => {
    const s = await server();
    const env = newEnv();
    const first = await raw(s.url, { env, agent_id: 'blip', applied: 0 });
    await first.waitReceived(0);
    expect((await write(s.url, env, 'one')).body.version).toBe(1);
    await first.waitReceived(1);
    first.ack(1);
    await waitUntil(async () => (await client(s.url, ADMIN).get(`/v1/envs/${env}/sync?version=1&wait_for=blip`)).body.synced, 'ack of 1');

    let done = false;
    const pending = write(s.url, env, 'two', { 'x-wait-for': 'all', 'x-wait-timeout': '-1' }).then((r) => ((done = true), r));
    await first.waitReceived(2);
    first.close(); // the blip: the socket is gone before the agent acked 2
    const second = await raw(s.url, { env, agent_id: 'blip', applied: 1, epoch: welcomeOf(first)!.epoch, applied_id: idOf(first, 1) });
    await second.waitReceived(2);
    await sleep(300);
    expect(done).toBe(false); // before: answered at once with {"synced":true,"acked":[],"pending":[]}
    second.ack(2);
    const r = await pending;
    expect(r.body.sync).toEqual({ version: 2, synced: true, acked: ['blip'], pending: [] });
  });

  it('two sockets with one agent id: the newer replaces the older (4409), only its acks count, and it stays connected', async () => {
    const a = await server();
    const b = await server({ keyPrefix: a.config.keyPrefix });
    const env = newEnv();
    const older = await raw(a.url, { env, agent_id: 'twin', applied: 0 });
    await older.waitReceived(0);
    const newer = await raw(b.url, { env, agent_id: 'twin', applied: 0 }); // on another replica
    await newer.waitReceived(0);
    expect((await older.waitClosed()).code).toBe(4409);
    expect(older.messages.some((m) => m.type === 'error' && m.error === 'agent_replaced')).toBe(true);

    let done = false;
    const pending = write(a.url, env, 'x', { 'x-wait-for': 'all', 'x-wait-timeout': '-1' }).then((r) => ((done = true), r));
    await newer.waitReceived(1);
    await sleep(300);
    expect(done).toBe(false);
    newer.ack(1);
    expect((await pending).body.sync).toEqual({ version: 1, synced: true, acked: ['twin'], pending: [] });
    const agents = (await client(a.url, ADMIN).get(`/v1/envs/${env}/agents`)).body as { id: string; connected: boolean; applied: number }[];
    expect(agents).toEqual([expect.objectContaining({ id: 'twin', connected: true, applied: 1 })]);
    expect((await a.metrics.registry.getSingleMetric('factsync_replaced_sessions_total')!.get()).values[0]?.value).toBe(1);
  });

  it('a late ack of a replaced session never counts, on the same replica', async () => {
    const s = await server();
    const env = newEnv();
    const older = await raw(s.url, { env, agent_id: 'dup', applied: 0 });
    await older.waitReceived(0);
    const pending = write(s.url, env, 'x', { 'x-wait-for': 'dup', 'x-wait-timeout': '-1' });
    await older.waitReceived(1);
    const newer = await raw(s.url, { env, agent_id: 'dup', applied: 0 });
    await newer.waitReceived(1);
    await older.waitClosed();
    older.ack(1); // too late: its session is no longer the agent's
    expect((await client(s.url, ADMIN).get(`/v1/envs/${env}/sync?version=1&wait_for=dup`)).body.synced).toBe(false);
    newer.ack(1);
    expect((await pending).body.sync).toMatchObject({ synced: true, acked: ['dup'] });
  });
});

describe('a session never hangs on a closed feed', () => {
  it('a join racing with the leave that empties the feed gets a live feed', async () => {
    const store = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 65536 });
    const b = new Broadcaster(store, pino({ level: 'silent' }), { healIntervalMs: 600_000, pageSize: 100 });
    closers.push(() => b.close());
    const member = (): FeedMember & { got: number[] } => {
      const m = { got: [] as number[], deliver: (batch: ChangeBatch) => m.got.push(...batch.changes.map((c) => c.version)), resync: () => undefined };
      return m;
    };
    const first = member();
    const second = member();
    const joining = b.join('e', first);
    b.leave('e', first); // the last member leaves while the feed is still opening
    await b.join('e', second);
    await joining;
    await store.write('e', { ops: [upsert('doc', 'k', {})], ts: 't' });
    await waitUntil(() => second.got.includes(1), 'delivery to the second member');
  });
});

describe('history is chained (invariant 9)', () => {
  it('failover to a Redis replica that missed the last write: the agent notices the rewritten version and resyncs', async () => {
    const pair = await laggingReplicaPair(closers);
    const s = await startServer({ redisUrl: pair.url, env: { HEAL_INTERVAL_MS: '200', LEASE_MS: '3000', PING_INTERVAL_MS: '1000' } });
    closers.push(() => s.close());
    const env = newEnv();
    const agent = await startAgent(s.url, { env: { AGENT_ENV: env, AGENT_ID: 'pdp-1' } });
    closers.push(() => agent.close());
    await waitUntil(() => agent.status().ready, 'agent ready');
    const put = (key: string, value: string, wait = '10') =>
      client(s.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', key, { value })] }, { 'x-wait-for': 'all', 'x-wait-timeout': wait });

    for (let i = 1; i <= 3; i++) expect((await put(`k${i}`, `original-${i}`)).body.sync.synced).toBe(true);
    await pair.freeze(); // the replica stops here, at version 3
    expect((await put('k4', 'original-4')).body).toMatchObject({ version: 4, sync: { synced: true } });
    expect(agent.store.get('doc', 'k4')?.value).toEqual({ value: 'original-4' });

    pair.failover(); // failover: the store now has versions 1..3 and the same epoch
    const rewritten = await waitUntil(async () => {
      const w = await put('k4', 'new-4', '20');
      return w.status === 200 ? w : undefined;
    }, 'a write on the promoted replica', 20_000, 200);
    expect(rewritten.body.version).toBe(4); // the same version number, another history
    expect(rewritten.body.sync).toMatchObject({ synced: true, acked: ['pdp-1'] });
    expect(agent.store.get('doc', 'k4')?.value).toEqual({ value: 'new-4' });
    expect(agent.store.version).toBe(4);
    expect(agent.status().snapshots_applied).toBeGreaterThanOrEqual(2);
    const serverForks = (await s.metrics.historyForks.get()).values.reduce((n, v) => n + v.value, 0);
    expect(serverForks).toBeGreaterThan(0);
  });
});

describe('REDIS_WAIT_REPLICAS', () => {
  it('answers a write only once a Redis replica has it; without one in time it is a 503 naming the version', async () => {
    const master = await startRedisServer();
    closers.push(() => master.stop());
    // Long enough for a replica on a loaded machine; the no-replica case waits it out once.
    const s = await startServer({ redisUrl: master.url, env: { REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: String(scaled(2500)) } });
    closers.push(() => s.close());
    const env = newEnv();
    const c = client(s.url, ADMIN);
    const body = { ops: [upsert('doc', 'k', {})] };
    const alone = await c.post(`/v1/envs/${env}/facts`, body, { 'idempotency-key': 'w-1' });
    expect(alone.status).toBe(503);
    expect(alone.body).toMatchObject({ error: 'store_unavailable', version: 1 });
    expect(alone.body.message).toMatch(/only 0 of the 1 Redis replicas/);

    const replica = await startRedisServer();
    closers.push(() => replica.stop());
    const r = new Redis(replica.url);
    closers.push(() => r.disconnect());
    await r.call('REPLICAOF', '127.0.0.1', String(master.port));
    await waitUntil(async () => (await r.info('replication')).includes('master_link_status:up'), 'replica in sync');
    const retried = await c.post(`/v1/envs/${env}/facts`, body, { 'idempotency-key': 'w-1' });
    expect(retried.body).toEqual({ version: 1, epoch: expect.any(String) }); // the same key: the first write, not a second one
    expect((await c.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'k2', {})] })).body).toEqual({ version: 2, epoch: expect.any(String) });
    expect(await r.hget(`${s.config.keyPrefix}:{${env}}:meta`, 'version')).toBe('2');
  });
});

describe('bad retries and a store that says "not now"', () => {
  it('the same Idempotency-Key with another body is 422 idempotency_key_reused; with the same body it replays', async () => {
    const s = await server();
    const env = newEnv();
    const c = client(s.url, ADMIN);
    const body = { ops: [upsert('doc', 'k', { n: 1 })] };
    expect((await c.post(`/v1/envs/${env}/facts`, body, { 'idempotency-key': 'k-1' })).body).toEqual({ version: 1, epoch: expect.any(String) });
    const again = await c.post(`/v1/envs/${env}/facts`, body, { 'idempotency-key': 'k-1' });
    expect(again.body).toEqual({ version: 1, epoch: expect.any(String) });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const other = await c.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'k', { n: 2 })] }, { 'idempotency-key': 'k-1' });
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ error: 'idempotency_key_reused', version: 1 });
    expect(other.body.message).toMatch(/different write.*new key/);
    expect((await c.get(`/v1/envs/${env}/head`)).body.version).toBe(1);
  });

  it('OOM from Redis is a 503 with Retry-After, and the agent forwarder retries it until Redis accepts', async () => {
    const redis = await startRedisServer();
    closers.push(() => redis.stop());
    const admin = new Redis(redis.url);
    closers.push(() => admin.disconnect());
    const s = await startServer({ redisUrl: redis.url });
    closers.push(() => s.close());
    const env = newEnv();
    const agent = await startAgent(s.url, { env: { AGENT_ENV: env } });
    closers.push(() => agent.close());
    await waitUntil(() => agent.status().ready, 'agent ready');

    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    const refused = await client(s.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'k', {})] });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ error: 'store_unavailable' });
    expect(refused.headers.get('retry-after')).toBe('1');

    const refusals = async () => (await s.metrics.rejected.get()).values.find((v) => v.labels.code === 'store_unavailable')?.value ?? 0;
    const before = await refusals();
    const forwarded = client(agent.url).post('/v1/facts', { ops: [upsert('doc', 'through-agent', {})] });
    await waitUntil(async () => (await refusals()) > before, 'the forwarded write to be refused at least once');
    await admin.config('SET', 'maxmemory', '0');
    const r = await forwarded;
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ version: 1, synced: true });
    expect((await client(s.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version).toBe(1);
  });
});
