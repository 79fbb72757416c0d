import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ADMIN, AGENT, TOKENS, newEnv } from '../src/inproc.js';
import { spawnAgent, spawnServer, scratch } from '../src/procs.js';
import { client, upsert } from '../src/http.js';
import { freePort } from '../src/ports.js';
import { waitUntil } from '../src/wait.js';

/**
 * Offline operation, as an SRE tries it: an agent with DATA_DIR running, the
 * server stopped, the agent restarted. It must take traffic (ready, stale)
 * and answer from its state; when the server is back it is fresh and caught
 * up. READY_REQUIRES_SYNC=true keeps the old behaviour; an agent with no
 * state is never ready before its first snapshot.
 */
const { dir, track, cleanup } = scratch('factsync-offline-');
afterAll(cleanup);

describe('offline operation', () => {
  it('an agent restarted while the server is down is ready and stale, answers from its state, and is fresh and caught up once the server is back', async () => {
    const port = await freePort();
    const env = newEnv();
    const serverEnv = { PORT: String(port), DATA_DIR: join(dir, 'server'), AUTH_TOKENS: TOKENS };
    let server = track(await spawnServer(serverEnv));
    const agentDir = join(dir, 'agent');
    const agentEnv = { SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'pdp-offline', DATA_DIR: agentDir, PERSIST_INTERVAL_MS: '50' };
    let agent = track(await spawnAgent(agentEnv));
    await waitUntil(async () => (await client(agent.url).get('/readyz')).status === 200, 'the agent to bootstrap');
    const w = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [
      upsert('resource', 'task', { actions: ['read'] }), upsert('role', 'viewer', { permissions: ['task:read'] }),
      upsert('role_assignment', 'ann/viewer/default', { user: 'ann', role: 'viewer', tenant: 'default' }),
    ] });
    await waitUntil(async () => (await client(agent.url).get('/v1/status')).body.applied === w.body.version, 'the agent to apply the write');
    expect((await client(agent.url).get('/readyz')).body).toEqual({ status: 'ok', stale: false, applied: w.body.version, connected: true });

    // The outage: the server goes, then the PDP restarts.
    await server.stop('SIGTERM');
    expect(await agent.stop('SIGTERM')).toBe(0);
    agent = track(await spawnAgent(agentEnv));
    const ready = await client(agent.url).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ok', stale: true, applied: w.body.version, connected: false });
    expect((await client(agent.url).get('/ready')).status).toBe(200); // the Permit Helm chart's probe
    const check = await client(agent.url).post('/allowed', { user: 'ann', action: 'read', resource: 'task' });
    expect(check.body).toMatchObject({ allow: true, version: w.body.version });
    expect((await client(agent.url).get('/v1/status')).body).toMatchObject({ ready: true, stale: true, connected: false });
    expect((await client(agent.url).get('/metrics')).body).toMatch(/^factsync_agent_stale 1$/m);
    await waitUntil(() => agent.lines.some((l) => l.includes('offline: no server answers; serving the state restored from DATA_DIR')), 'the offline line');

    // The server is back: the agent reconnects, catches up with what is written now, and says so once.
    server = track(await spawnServer(serverEnv));
    const w2 = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('role_assignment', 'bob/viewer/default', { user: 'bob', role: 'viewer', tenant: 'default' })] });
    // Fresh and at w2: it may reconnect before w2 is written (fresh at the head its welcome named) and apply w2 live after.
    await waitUntil(async () => {
      const b = (await client(agent.url).get('/readyz')).body as { stale: boolean; applied: number };
      return b.stale === false && b.applied === w2.body.version;
    }, 'the agent to be fresh and at the last write', 60_000);
    expect((await client(agent.url).get('/readyz')).body).toEqual({ status: 'ok', stale: false, applied: w2.body.version, connected: true });
    expect((await client(agent.url).post('/allowed', { user: 'bob', action: 'read', resource: 'task' })).body).toMatchObject({ allow: true, version: w2.body.version });
    expect((await client(agent.url).get('/metrics')).body).toMatch(/^factsync_agent_stale 0$/m);
    await waitUntil(() => agent.lines.some((l) => l.includes('fresh again: caught up with the server')), 'the fresh line');
    expect(agent.lines.filter((l) => l.includes('offline: no server answers')).length).toBe(1);

    // The server goes again under a running agent: stale, still ready, one line.
    await server.stop('SIGTERM');
    await waitUntil(async () => (await client(agent.url).get('/readyz')).body.stale === true, 'the agent to notice');
    expect((await client(agent.url).get('/readyz')).status).toBe(200);
    await waitUntil(() => agent.lines.some((l) => l.includes('stale: no server answers; serving the last state applied')), 'the stale line');
  });

  it('READY_REQUIRES_SYNC=true stays unready while offline; an agent without state is never ready before a snapshot', async () => {
    const env = newEnv();
    const server = track(await spawnServer({ DATA_DIR: join(dir, 'server2'), AUTH_TOKENS: TOKENS }));
    const agentDir = join(dir, 'agent2');
    const agentEnv = { SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'pdp-strict', DATA_DIR: agentDir, PERSIST_INTERVAL_MS: '50' };
    let agent = track(await spawnAgent(agentEnv));
    await waitUntil(async () => (await client(agent.url).get('/readyz')).status === 200, 'the agent to bootstrap');
    const w = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('user', 'ann', {})] });
    await waitUntil(async () => (await client(agent.url).get('/v1/status')).body.applied === w.body.version, 'the agent to apply the write');
    await server.stop('SIGTERM');
    expect(await agent.stop('SIGTERM')).toBe(0);

    agent = track(await spawnAgent({ ...agentEnv, READY_REQUIRES_SYNC: 'true' }));
    const strict = await client(agent.url).get('/readyz');
    expect(strict.status).toBe(503);
    expect(strict.body).toMatchObject({ error: 'not_synced', message: expect.stringContaining('READY_REQUIRES_SYNC=true') });
    // It still answers from its state, as before: only readiness changed.
    expect((await client(agent.url).get('/v1/facts/user/ann')).status).toBe(200);
    await agent.stop('SIGTERM');

    const empty = track(await spawnAgent({ ...agentEnv, DATA_DIR: join(dir, 'empty'), AGENT_ID: 'pdp-empty' }));
    expect((await client(empty.url).get('/readyz')).status).toBe(503);
    expect((await client(empty.url).get('/v1/status')).body).toMatchObject({ ready: false, stale: true, applied: 0 });
  });
});
