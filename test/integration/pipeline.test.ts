import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nanoid } from 'nanoid';
import { factsDigest } from '@factsync/shared';
import { ADMIN, AGENT, TOKENS, newEnv } from '../src/inproc.js';
import { runTs, spawnAgent, spawnServer, type Proc } from '../src/procs.js';
import { client, upsert } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/**
 * The whole pipeline as it runs in production: two server processes on one
 * Redis, six agent processes split over them, and three writer processes
 * writing concurrently through both replicas.
 */
describe('pipeline: 2 server processes, 6 agent processes, 3 writer processes', () => {
  const env = newEnv();
  const servers: Proc[] = [];
  const agents: Proc[] = [];

  beforeAll(async () => {
    const common = { REDIS_URL: inject('redisUrl'), KEY_PREFIX: `p${nanoid(6)}`, AUTH_TOKENS: TOKENS, HEAL_INTERVAL_MS: '200' };
    servers.push(...await Promise.all([spawnServer({ ...common, REPLICA_ID: 'r1' }), spawnServer({ ...common, REPLICA_ID: 'r2' })]));
    agents.push(...await Promise.all(Array.from({ length: 6 }, (_, i) => spawnAgent({
      SERVER_URL: servers[i % 2]!.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: `agent-${i}`,
    }))));
    await Promise.all(agents.map((a) => waitUntil(async () => (await client(a.url).get('/readyz')).status === 200, `${a.url} ready`)));
  }, 60_000);

  afterAll(async () => {
    const codes = await Promise.all([...agents, ...servers].map((p) => p.stop('SIGTERM')));
    // Graceful shutdown: every process exits 0 on SIGTERM.
    expect(codes).toEqual(codes.map(() => 0));
  });

  it('every version is applied by every agent exactly once, in order, and every agent ends equal to the snapshot', async () => {
    const urls = servers.map((s) => s.url).join(',');
    const perWriter = 150;
    const outputs = await Promise.all(['w1', 'w2', 'w3'].map((id) => runTs('test/src/writer.ts', [urls, env, ADMIN, String(perWriter), id])));
    const versions = outputs.flatMap((o) => (JSON.parse(o) as { versions: number[] }).versions).sort((a, b) => a - b);
    const total = perWriter * 3;
    // Invariant 1: versions 1..N, no gap, no reuse, across writers and replicas.
    expect(versions).toEqual(Array.from({ length: total }, (_, i) => i + 1));

    const admin = client(servers[0]!.url, ADMIN);
    const snap = (await admin.get(`/v1/envs/${env}/snapshot`)).body as { version: number; facts: { type: string; key: string; value: unknown }[] };
    expect(snap.version).toBe(total);
    const expected = factsDigest(snap.facts);

    for (const a of agents) {
      const status = await waitUntil(async () => {
        const s = (await client(a.url).get('/v1/status?digest=true')).body;
        return s.applied === total ? s : undefined;
      }, `${a.url} to apply ${total}`);
      // Invariant 2: one snapshot at version 0, then every change applied exactly once (a duplicate or a skip changes the count).
      expect(status).toMatchObject({ applied: total, head: total, connected: true, snapshots_applied: 1, changes_applied: total, digest: expected });
    }
  });

  it('a write on one replica waits for acks of agents on both replicas (wait_for=all)', async () => {
    const w = await client(servers[1]!.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'final', { ok: true })] }, { 'x-wait-for': 'all', 'x-wait-timeout': '10' });
    expect(w.status).toBe(200);
    expect(w.body.sync).toMatchObject({ synced: true, pending: [] });
    expect(w.body.sync.acked).toEqual(agents.map((_, i) => `agent-${i}`));
    for (const a of agents) expect((await client(a.url).get('/v1/facts/doc/final')).body).toEqual({ type: 'doc', key: 'final', value: { ok: true } });

    const listed = (await client(servers[0]!.url, ADMIN).get(`/v1/envs/${env}/agents`)).body as { id: string; applied: number; connected: boolean; replica: string }[];
    expect(listed.map((a) => [a.id, a.connected, a.replica])).toEqual(agents.map((_, i) => [`agent-${i}`, true, i % 2 === 0 ? 'r1' : 'r2']));
    expect(listed.every((a) => a.applied === w.body.version)).toBe(true);
  });
});
