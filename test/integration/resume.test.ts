import { afterEach, describe, expect, inject, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nanoid } from 'nanoid';
import { Redis } from 'ioredis';
import { factsDigest } from '@factsync/shared';
import { ADMIN, AGENT, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { client, upsert } from '../src/http.js';
import { RawAgent } from '../src/raw-agent.js';
import { sleep, waitUntil } from '../src/wait.js';

type Agent = Awaited<ReturnType<typeof startAgent>>;

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
  closers.length = 0;
});
async function server(opts: Parameters<typeof startServer>[0] = {}): Promise<RunningServer> {
  const s = await startServer({ redisUrl: inject('redisUrl'), ...opts });
  closers.push(() => s.close());
  return s;
}
async function agent(urls: string | string[], env: Record<string, string>): Promise<Agent> {
  const a = await startAgent(urls, { env });
  closers.push(() => a.close());
  return a;
}

async function writeMany(base: string, env: string, n: number, from = 0): Promise<number> {
  const admin = client(base, ADMIN);
  let version = 0;
  for (let i = from; i < from + n; i++) {
    const r = await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', `d${i % 17}`, { i })] });
    expect(r.status).toBe(200);
    version = r.body.version;
  }
  return version;
}

/** Simulate Redis losing an env's data (no AOF and a restart, a flush): all its keys vanish. */
async function loseEnv(s: RunningServer, env: string): Promise<void> {
  const redis = new Redis(inject('redisUrl'));
  const keys = await redis.keys(`${s.config.keyPrefix}:{${env}}:*`);
  expect(keys.length).toBeGreaterThan(0);
  await redis.del(...keys);
  await redis.quit();
}

async function expectConverged(a: Agent, base: string, env: string): Promise<void> {
  const snap = (await client(base, ADMIN).get(`/v1/envs/${env}/snapshot`)).body;
  await waitUntil(() => a.store.version === snap.version, `agent to reach ${snap.version} (at ${a.store.version})`);
  expect(a.store.digest()).toBe(factsDigest(snap.facts));
}

describe('resume and repair', () => {
  it('resumes through the log after its socket is dropped mid-stream, without a snapshot', async () => {
    const s = await server();
    const env = newEnv();
    const a = await agent(s.url, { AGENT_ENV: env });
    await waitUntil(() => a.status().ready, 'agent ready');
    let drops = 0;
    const writing = writeMany(s.url, env, 300);
    const dropper = setInterval(() => {
      for (const sess of s.gateway.sessions) {
        sess.terminate();
        drops++;
      }
    }, 40);
    const head = await writing;
    clearInterval(dropper);
    expect(drops).toBeGreaterThan(3);
    await expectConverged(a, s.url, env);
    const st = a.status();
    expect(st.reconnects).toBeGreaterThan(3);
    expect(st).toMatchObject({ applied: head, changes_applied: head, snapshots_applied: 1 });
  });

  it('falls back to a snapshot when the log was trimmed past its version, and resumes from DATA_DIR otherwise', async () => {
    const s = await server({ env: { LOG_RETENTION: '10' } });
    const env = newEnv();
    const dataDir = await mkdtemp(join(tmpdir(), 'factsync-'));
    const id = `persist-${nanoid(4)}`;
    const conf = { AGENT_ENV: env, AGENT_ID: id, DATA_DIR: dataDir, PERSIST_INTERVAL_MS: '20' };

    const first = await startAgent(s.url, { env: conf });
    await writeMany(s.url, env, 5);
    await waitUntil(() => first.store.version === 5, 'first run to apply 5');
    await first.close();

    // Within the log's reach: the restart resumes from disk and reads 3 changes, no snapshot.
    await writeMany(s.url, env, 3, 5);
    const second = await startAgent(s.url, { env: conf });
    expect(second.store.version).toBe(5);
    await expectConverged(second, s.url, env);
    expect(second.status()).toMatchObject({ snapshots_applied: 0, changes_applied: 3 });
    await second.close();

    // 30 more versions with a log of 10: the log cannot bridge the gap, so the server sends a snapshot.
    await writeMany(s.url, env, 30, 8);
    expect((await client(s.url, ADMIN).get(`/v1/envs/${env}/changes?after=8`)).status).toBe(410);
    const third = await agent(s.url, conf);
    await expectConverged(third, s.url, env);
    expect(third.status()).toMatchObject({ applied: 38, snapshots_applied: 1, changes_applied: 0 });
  });

  it('repairs pub/sub doorbells that never arrive', async () => {
    const writer = await server();
    let seen = 0;
    let dropped = 0;
    // A second replica on the same data whose subscriber loses two doorbells out of three.
    const replica = await server({
      keyPrefix: writer.config.keyPrefix,
      hooks: { dropEvent: () => ++seen % 3 !== 0 && ++dropped > 0 },
      env: { HEAL_INTERVAL_MS: '100' },
    });
    const env = newEnv();
    const a = await agent(replica.url, { AGENT_ENV: env });
    await waitUntil(() => a.status().ready, 'agent ready');
    const head = await writeMany(writer.url, env, 60);
    await expectConverged(a, writer.url, env);
    expect(dropped).toBeGreaterThan(20);
    expect(replica.broadcaster.gapsRepaired).toBeGreaterThan(0);
    expect(a.status()).toMatchObject({ applied: head, changes_applied: head, snapshots_applied: 1 });
  });

  it('acks received on replica A release a waiter on replica B; a dead agent leaves "all" when its lease ends', async () => {
    const fast = { LEASE_MS: '1500', PING_INTERVAL_MS: '400' };
    const a = await server({ env: fast });
    const b = await server({ keyPrefix: a.config.keyPrefix, env: fast });
    const env = newEnv();
    const held = await RawAgent.connect(a.url, AGENT, { type: 'hello', env, agent_id: 'held', applied: 0 });
    const quiet = await RawAgent.connect(a.url, AGENT, { type: 'hello', env, agent_id: 'quiet', applied: 0 });
    // The snapshot is sent after the agent is registered, so both count for `all` from here on.
    await held.waitReceived(0);
    await quiet.waitReceived(0);

    const pending = client(b.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'x', {})] }, { 'x-wait-for': 'held', 'x-wait-timeout': '-1' });
    await held.waitReceived(1);
    let done = false;
    void pending.then(() => (done = true));
    await sleep(200);
    expect(done).toBe(false);
    held.ack(1);
    const r = await pending;
    expect(r.body).toEqual({ version: 1, epoch: expect.any(String), sync: { version: 1, synced: true, acked: ['held'], pending: [] } });

    // wait_for=all on B: "quiet" never acks; once its socket is gone it stays awaited until its lease ends.
    const all = client(b.url, ADMIN).get(`/v1/envs/${env}/sync?version=1&wait_for=all&timeout=-1`);
    await sleep(200);
    quiet.close();
    await sleep(200);
    expect((await client(b.url, ADMIN).get(`/v1/envs/${env}/sync?version=1&wait_for=all&timeout=0`)).body).toMatchObject({ synced: false, pending: ['quiet'] });
    expect((await all).body).toEqual({ version: 1, synced: true, acked: ['held'], pending: [] });
    held.close();
  });

  it('when the store loses an env (new epoch), agents resync from a snapshot instead of mixing epochs', async () => {
    // No periodic heal: the doorbell's epoch alone must reveal the loss.
    const s = await server({ env: { HEAL_INTERVAL_MS: '600000' } });
    const env = newEnv();
    const a = await agent(s.url, { AGENT_ENV: env });
    await writeMany(s.url, env, 20);
    await waitUntil(() => a.store.version === 20, 'agent at 20');
    const oldEpoch = a.store.epoch;

    await loseEnv(s, env);

    // The new epoch overtakes the agent's version; contiguous-looking doorbells must not be applied on top.
    const admin = client(s.url, ADMIN);
    for (let i = 0; i < 25; i++) await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('fresh', `f${i}`, { i })] });
    await expectConverged(a, s.url, env);
    expect(a.store.epoch).not.toBe(oldEpoch);
    expect(a.store.get('doc', 'd1')).toBeUndefined();
    expect(a.status().snapshots_applied).toBe(2);
  });

  it('acks belong to an epoch (invariant 8): after the store lost an env, an agent that acked 20 is awaited for the new version 1', async () => {
    const s = await server({ env: { HEAL_INTERVAL_MS: '100' } });
    const env = newEnv();
    const a = await agent(s.url, { AGENT_ENV: env, AGENT_ID: 'epoch-agent' });
    await writeMany(s.url, env, 20);
    await waitUntil(async () => (await client(s.url, ADMIN).get(`/v1/envs/${env}/sync?version=20&wait_for=epoch-agent`)).body.synced, 'ack of 20');
    const oldEpoch = a.store.epoch;
    await loseEnv(s, env);
    const r = await client(s.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('fresh', 'after-loss', {})] },
      { 'x-wait-for': 'epoch-agent', 'x-wait-timeout': '20' });
    expect(r.body).toMatchObject({ version: 1, sync: { synced: true, acked: ['epoch-agent'] } });
    // Synced means this agent applied version 1 of the new epoch, not that it once acked 20 of the old one.
    expect(a.store.epoch).not.toBe(oldEpoch);
    expect(a.store.get('fresh', 'after-loss')).toBeDefined();
  });

  it('after the store lost an env, an agent ahead of the new epoch resyncs and reports the new head', async () => {
    const s = await server({ env: { HEAL_INTERVAL_MS: '100' } });
    const env = newEnv();
    const a = await agent(s.url, { AGENT_ENV: env });
    await writeMany(s.url, env, 20);
    await waitUntil(() => a.store.version === 20, 'agent at 20');
    await loseEnv(s, env);
    await writeMany(s.url, env, 5);
    await expectConverged(a, s.url, env);
    expect(a.status()).toMatchObject({ applied: 5, head: 5, snapshots_applied: 2 });
  });
});
