import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ADMIN, WRITER, READER, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { cli } from '../src/cli.js';
import { waitUntil } from '../src/wait.js';

/**
 * Envs are created explicitly: a typo in a URL or an AGENT_ENV is a 404 that
 * names the envs there are, not a new env; an agent waits for its env to be
 * created; ENVS creates envs at start, ENVS_AUTO_CREATE=true restores creation
 * by the first write. Writes that look like typos are applied with warnings.
 */
describe('explicit envs', () => {
  let server: RunningServer;
  const admin = () => client(server.url, ADMIN);

  beforeAll(async () => {
    server = await startServer({ env: { ENVS_AUTO_CREATE: 'false', ENVS: 'alpha, staging' } });
  });
  afterAll(async () => {
    await server?.close();
  });

  const user = (key: string) => ({ ops: [{ op: 'upsert', type: 'user', key, value: {} }] });

  it('ENVS exist from the start; a write, read or subscription of another env is a 404 naming them and how to create it', async () => {
    expect((await admin().get('/v1/envs')).body).toEqual({ envs: ['alpha', 'staging'] });
    const w = await admin().post('/v1/envs/prod/facts', user('u1'));
    expect(w.status).toBe(404);
    expect(w.body.error).toBe('not_found');
    expect(w.body.message).toContain('env "prod" does not exist (there are: "alpha", "staging")');
    expect(w.body.message).toContain('npx factsync envs create prod');
    for (const path of ['/v1/envs/prod/head', '/v1/envs/prod/snapshot', '/v1/envs/prod/changes?after=0', '/v1/envs/prod/agents', '/v1/envs/prod/facts/user/u1']) {
      const r = await client(server.url, READER).get(path);
      expect(r.status, path).toBe(404);
      expect(r.body.message, path).toContain('does not exist');
    }
    // The typo did not become an env.
    expect((await admin().get('/v1/envs')).body.envs).not.toContain('prod');
    expect((await admin().post('/v1/envs/alpha/facts', user('u1'))).status).toBe(200);
  });

  it('POST /v1/envs/:env creates an env (admin only): 201, then 200 once it exists', async () => {
    const byWriter = await client(server.url, WRITER).post('/v1/envs/made', undefined);
    expect(byWriter.status).toBe(403);
    expect(byWriter.body.message).toMatch(/cannot create envs: use an admin token/);
    const bad = await admin().post('/v1/envs/no%20spaces', undefined);
    expect(bad.status).toBe(400);
    const first = await admin().post('/v1/envs/made', undefined);
    expect(first.status).toBe(201);
    expect(first.body).toEqual({ env: 'made', created: true });
    const again = await admin().post('/v1/envs/made', undefined);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ env: 'made', created: false });
    expect((await client(server.url, WRITER).post('/v1/envs/made/facts', user('u1'))).status).toBe(200);
    expect((await admin().get('/v1/envs/made/head')).body.version).toBe(1);
  });

  it('an agent whose env does not exist says so once, waits, and becomes ready when it is created', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk: Buffer, _e, done) { lines.push(...chunk.toString().split('\n').filter(Boolean)); done(); } });
    const agent = await startAgent(server.url, { env: { AGENT_ENV: 'later', RECONNECT_MAX_MS: '200' }, options: { logger: pino({ level: 'info' }, sink) } });
    try {
      // Several refusals while it waits, one line about them.
      await waitUntil(() => agent.status().reconnects >= 4, 'the agent to be refused a few times', 20_000);
      const said = lines.filter((l) => l.includes('the server has no such env yet'));
      expect(said).toHaveLength(1);
      expect(said[0]).toContain('env \\"later\\" does not exist');
      expect((await fetch(`${agent.url}/readyz`)).status).toBe(503);
      expect((await admin().post('/v1/envs/later', undefined)).status).toBe(201);
      await waitUntil(async () => (await fetch(`${agent.url}/readyz`)).status === 200, 'the agent ready once its env exists', 20_000);
      // A write through it reaches the env it waited for.
      const w = await client(agent.url).post('/v1/facts', user('u-later'));
      expect(w.status).toBe(200);
      expect(w.body.synced).toBe(true);
    } finally {
      await agent.close();
    }
  });

  it('a custom type one edit from a well-known one is written, with a warning (server and agent)', async () => {
    const w = await admin().post('/v1/envs/alpha/facts', { ops: [{ op: 'upsert', type: 'users', key: 'u9', value: {} }] });
    expect(w.status).toBe(200);
    expect(w.body.warnings).toHaveLength(1);
    expect(w.body.warnings[0]).toMatch(/type "users" is not a well-known type but one edit from "user"/);
    // Written as asked: a custom type.
    expect((await admin().get('/v1/envs/alpha/facts/users/u9')).status).toBe(200);
    // Nothing to say, nothing said.
    const plain = await admin().post('/v1/envs/alpha/facts', user('u10'));
    expect(plain.body).not.toHaveProperty('warnings');
    const custom = await admin().post('/v1/envs/alpha/facts', { ops: [{ op: 'upsert', type: 'invoice', key: 'i1', value: {} }] });
    expect(custom.body).not.toHaveProperty('warnings');

    const agent = await startAgent(server.url, { env: { AGENT_ENV: 'alpha' } });
    try {
      await waitUntil(async () => (await fetch(`${agent.url}/readyz`)).status === 200, 'agent ready');
      const viaAgent = await client(agent.url).post('/v1/facts', { ops: [{ op: 'upsert', type: 'tenants', key: 't1', value: {} }] });
      expect(viaAgent.status).toBe(200);
      expect(viaAgent.body.warnings?.[0]).toMatch(/type "tenants" .* one edit from "tenant"/);
    } finally {
      await agent.close();
    }
  });

  it('a wait for an agent id the env never saw answers normally, with a warning naming it', async () => {
    const w = await admin().post('/v1/envs/alpha/facts', user('u11'), { 'x-wait-for': 'everyone', 'x-wait-timeout': '0.3' });
    expect(w.status).toBe(200);
    expect(w.body.sync.synced).toBe(false);
    expect(w.body.warnings).toEqual([expect.stringMatching(/^no agent "everyone" has ever connected to env "alpha"/)]);
  });

  it('ENVS_AUTO_CREATE=true: a first write creates its env', async () => {
    const auto = await startServer({ env: { ENVS_AUTO_CREATE: 'true' } });
    try {
      const w = await client(auto.url, WRITER).post('/v1/envs/fresh/facts', user('u1'));
      expect(w.status).toBe(200);
      expect((await client(auto.url, ADMIN).get('/v1/envs')).body.envs).toContain('fresh');
    } finally {
      await auto.close();
    }
  });

  it('npx factsync envs create NAME', async () => {
    const env = { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN };
    const made = await cli(['envs', 'create', 'from-cli'], env);
    expect(made.code, made.err).toBe(0);
    expect(JSON.parse(made.out)).toEqual({ env: 'from-cli', created: true });
    const again = await cli(['envs', 'create', 'from-cli'], env);
    expect(again.code, again.err).toBe(0);
    expect(JSON.parse(again.out)).toEqual({ env: 'from-cli', created: false });
    const listed = await cli(['envs', '--json'], env);
    expect(JSON.parse(listed.out)).toContain('from-cli');
    const typo = await cli(['--env', 'nope', 'status'], env);
    expect(typo.code).toBe(1);
    expect(typo.err).toContain('env "nope" does not exist');
  }, 60_000);
});
