import { describe, expect, inject, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nanoid } from 'nanoid';
import { ADMIN, AGENT, TOKENS, newEnv, startAgent, startServer } from '../src/inproc.js';
import { createMemoryStore, type FactStore } from '@factsync/server';
import { FactsyncError } from '@factsync/shared';
import { spawnAgent, spawnServer } from '../src/procs.js';
import { client, upsert } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/** Prometheus text → { 'name{labels}': value }. */
function scrape(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

describe('operations', () => {
  it('exposes Prometheus metrics on server and agent that follow what happened', async () => {
    const server = await startServer({ redisUrl: inject('redisUrl') });
    const env = newEnv();
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env, AGENT_ID: 'm1' } });
    try {
      await waitUntil(() => agent.status().ready, 'agent ready');
      const admin = client(server.url, ADMIN);
      for (let i = 0; i < 3; i++) await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', `d${i}`, {}), upsert('doc', `e${i}`, {})] }, { 'x-wait-timeout': '5' });
      await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('Bad', 'k', {})] });
      await client(server.url).get(`/v1/envs/${env}/head`);
      const s = scrape((await client(server.url).get('/metrics')).body);
      expect(s.get(`factsync_writes_total{env="${env}"}`)).toBe(3);
      expect(s.get(`factsync_write_ops_total{env="${env}"}`)).toBe(6);
      expect(s.get('factsync_write_duration_seconds_count')).toBe(3);
      expect(s.get(`factsync_env_head_version{env="${env}"}`)).toBe(3);
      expect(s.get(`factsync_connected_agents{env="${env}"}`)).toBe(1);
      expect(s.get(`factsync_agent_lag_versions_max{env="${env}"}`)).toBe(0);
      // Agent ids are client-chosen: no series carries them unless METRICS_AGENT_LABELS=true.
      expect([...s.keys()].some((k) => k.includes('agent="m1"'))).toBe(false);
      expect(s.get(`factsync_acks_total{env="${env}"}`)).toBeGreaterThanOrEqual(1);
      expect(s.get(`factsync_resyncs_total{env="${env}",source="snapshot"}`)).toBe(1);
      expect(s.get('factsync_snapshot_streams{state="running"}')).toBe(0); // that snapshot is done
      expect(s.get('factsync_snapshot_streams{state="queued"}')).toBe(0);
      expect(s.get('factsync_rejected_requests_total{code="invalid_request"}')).toBe(1);
      expect(s.get('factsync_rejected_requests_total{code="unauthorized"}')).toBe(1);
      expect(s.get('factsync_redis_errors_total')).toBe(0);
      expect(s.get('factsync_sync_wait_duration_seconds_count{synced="true"}')).toBe(3);

      const w = await client(agent.url).post('/v1/facts', { ops: [upsert('doc', 'via-agent', {})] });
      expect(w.body.synced).toBe(true);
      const a = scrape((await client(agent.url).get('/metrics')).body);
      expect(a.get('factsync_agent_applied_version')).toBe(4);
      expect(a.get('factsync_agent_lag_versions')).toBe(0);
      expect(a.get('factsync_agent_connected')).toBe(1);
      expect(a.get('factsync_agent_changes_applied_total')).toBe(4);
      expect(a.get('factsync_agent_snapshots_total')).toBe(1);
      expect(a.get('factsync_agent_facts')).toBe(7);
      expect(a.get('factsync_agent_forwarded_writes_total{outcome="synced"}')).toBe(1);
      expect(a.get('factsync_agent_write_duration_seconds_count{wait_for="local"}')).toBe(1);
      expect(a.get('factsync_agent_reconnects_total')).toBe(0);
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it('SIGTERM: the server answers waiting writers, closes sockets and exits 0; the agent persists and exits 0; no token in any log line', async () => {
    const env = newEnv();
    const secret = `s3cret-${nanoid(8)}`;
    const server = await spawnServer({
      REDIS_URL: inject('redisUrl'), KEY_PREFIX: `o${nanoid(6)}`, AUTH_TOKENS: `${TOKENS},${secret}=admin:*`, LOG_LEVEL: 'debug', SHUTDOWN_TIMEOUT_MS: '5000',
    });
    const dataDir = await mkdtemp(join(tmpdir(), 'factsync-op-'));
    const agent = await spawnAgent({ SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'op-1', DATA_DIR: dataDir, LOG_LEVEL: 'debug' });
    await waitUntil(async () => (await client(agent.url).get('/readyz')).status === 200, 'agent ready');

    const admin = client(server.url, secret);
    const w = await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'k', {})] }, { 'x-wait-timeout': '5' });
    expect(w.body.sync.synced).toBe(true);
    // A writer waiting for an agent that will never ack.
    const waiting = admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'k2', {})] }, { 'x-wait-for': 'ghost', 'x-wait-timeout': '-1' });
    await new Promise((r) => setTimeout(r, 300));

    // SHUTDOWN_TIMEOUT_MS=5000 makes a slow shutdown exit 1, so exit code 0 means it finished in time.
    const code = await server.stop('SIGTERM');
    expect(code).toBe(0);
    const answered = await waiting;
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ version: 2, sync: { synced: false, pending: ['ghost'] } });
    expect(server.lines.some((l) => l.includes('"shut down cleanly"'))).toBe(true);

    // The agent keeps serving its last state while the server is gone, then exits cleanly with its state on disk.
    await waitUntil(async () => (await client(agent.url).get('/v1/status')).body.connected === false, 'agent to notice');
    expect((await client(agent.url).get('/v1/facts/doc/k2')).status).toBe(200);
    expect(await agent.stop('SIGTERM')).toBe(0);
    expect(existsSync(join(dataDir, 'factsync-state.json'))).toBe(true);

    const logs = [...server.lines, ...agent.lines];
    expect(logs.filter((l) => l.includes(secret) || l.includes(ADMIN) || l.includes(AGENT))).toEqual([]);
    const writeLine = server.lines.map((l) => { try { return JSON.parse(l); } catch { return {}; } }).find((o) => o.msg === 'write');
    expect(writeLine).toMatchObject({ env, version: 1, reqId: expect.any(String) });
    expect(agent.lines.some((l) => l.includes('"agentId":"op-1"'))).toBe(true);
  });

  it('a write whose wait fails (store gone after the write) still answers 200 with its version, never an error to retry', async () => {
    const real = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 65536 });
    // The write goes through; everything the wait needs fails, as when Redis drops right after the script.
    const gone = async (): Promise<never> => { throw new FactsyncError('store_unavailable', 'gone'); };
    const store: FactStore = { ...real, subscribe: gone, subscribeControl: gone, agents: gone };
    const server = await startServer({ store });
    try {
      const r = await client(server.url, ADMIN).post('/v1/envs/e/facts', { ops: [upsert('doc', 'k', {})] }, { 'x-wait-timeout': '1' });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ version: 1, epoch: expect.any(String), sync: { version: 1, synced: false, acked: [], pending: [] } });
    } finally {
      await server.close();
    }
  });
  it('METRICS_AGENT_LABELS=true labels the lag with agent ids', async () => {
    const server = await startServer({ env: { METRICS_AGENT_LABELS: 'true' } });
    const env = newEnv();
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env, AGENT_ID: 'm2' } });
    try {
      await waitUntil(() => agent.status().ready, 'agent ready');
      await waitUntil(async () => scrape((await client(server.url).get('/metrics')).body).get(`factsync_agent_lag_versions{env="${env}",agent="m2"}`) === 0, 'the labelled series');
    } finally {
      await agent.close();
      await server.close();
    }
  });
});
