import { afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN, AGENT, newEnv, startAgent, startServer } from '../src/inproc.js';
import { client, upsert } from '../src/http.js';
import { RawAgent } from '../src/raw-agent.js';
import { freePort } from '../src/ports.js';
import { ROOT, npmScript, untilRunning, type NpmRun } from '../src/procs.js';
import { killGroup, spawnChild } from '../src/children.js';
import { waitUntil } from '../src/wait.js';

/** What a new user meets in the first hour (issue "A new user's first hour"), each as a test. */
const closers: (() => Promise<unknown> | unknown)[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'factsync-first-hour-'));
  closers.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
};
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers.length = 0;
});

/** An npm script as a user runs it: `npm start`, `npm run server`. */
function npm(args: string[], env: Record<string, string>): NpmRun {
  const run = npmScript(args, env);
  closers.push(() => killGroup(run.child));
  return run;
}

const answers = async (url: string): Promise<boolean> => {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
};

describe('npm start and start-up mistakes', () => {
  it('SIGTERM to `npm start` stops the server and the agent and exits 0; a second one on the same ports says so in one line', async () => {
    const [port, agentPort] = [await freePort(), await freePort()];
    const data = tempDir();
    // Without REDIS_URL, as a newcomer runs it: the embedded store in DATA_DIR.
    const first = npm(['start'], { PORT: String(port), AGENT_PORT: String(agentPort), DATA_DIR: data, REDIS_URL: '' });
    await untilRunning(first, 'npm start');
    expect(first.out).toContain(`store: embedded, in ${join(data, 'server')}`);
    // A stale token is told where npm start keeps the current one.
    const stale = await fetch(`http://127.0.0.1:${port}/v1/envs/default/head`, { headers: { authorization: 'Bearer dev-old' } });
    expect(stale.status).toBe(401);
    expect((await stale.json()).message).toBe(`unknown token: npm start's token is in ${join(data, 'dev-token')} (printed at start; it changes only when that file is deleted)`);
    expect(await answers(`http://127.0.0.1:${port}/healthz`)).toBe(true);
    expect(await answers(`http://127.0.0.1:${agentPort}/healthz`)).toBe(true);

    const oneLine = (run: NpmRun) => {
      const lines = run.err.trim().split('\n').filter((l) => !l.startsWith('npm ') && l.trim() !== '');
      expect(lines, run.err).toHaveLength(1);
      expect(run.err).not.toMatch(/\n\s+at /);
      return lines[0];
    };
    const second = npm(['start'], { PORT: String(port), AGENT_PORT: String(agentPort), DATA_DIR: tempDir(), REDIS_URL: '' });
    expect(await second.exited).toBe(1);
    expect(oneLine(second)).toMatch(new RegExp(`factsync: cannot start: port ${port} .* already in use.*set PORT`));
    // The same data directory: one server per directory.
    const third = npm(['start'], { PORT: String(await freePort()), AGENT_PORT: String(await freePort()), DATA_DIR: data, REDIS_URL: '' });
    expect(await third.exited).toBe(1);
    expect(oneLine(third)).toMatch(/factsync: cannot start: DATA_DIR .* is in use by another factsync server/);

    first.child.kill('SIGTERM'); // what a process manager sends to the npm process
    expect(await first.exited).toBe(0);
    await waitUntil(async () => !(await answers(`http://127.0.0.1:${port}/healthz`)) && !(await answers(`http://127.0.0.1:${agentPort}/healthz`)), 'both ports to close');
  });

  it('an unreachable REDIS_URL is one line that names REDIS_URL, not a stack trace', async () => {
    const run = npm(['run', 'server'], { PORT: '0', REDIS_URL: 'redis://127.0.0.1:1' });
    expect(await run.exited).toBe(1);
    expect(run.err).toMatch(/factsync server: cannot start: cannot reach Redis at REDIS_URL=redis:\/\/127\.0\.0\.1:1 .*fix REDIS_URL/);
    expect(run.err).not.toMatch(/\n\s+at /);
  });
});

describe('the agent and server APIs on a first try', () => {
  async function deployment() {
    const server = await startServer();
    closers.push(() => server.close());
    const env = newEnv();
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    closers.push(() => agent.close());
    await waitUntil(() => agent.status().ready, 'agent ready');
    return { server, agent, env };
  }

  it('keys up to 512 bytes of UTF-8 (URL-encoded) are written and read back through the agent; one byte more is a 400 that says so', async () => {
    const { agent } = await deployment();
    const keys = [`${'k'.repeat(500)}@example.com`.slice(0, 512), 'ü/ß#?&'.repeat(64)];
    const over = await client(agent.url).call('PUT', `/v1/facts/users/${encodeURIComponent(`${'ü/ß#?&'.repeat(64)}k`)}`, { email: 'x@y.z' });
    expect(over.status).toBe(400);
    expect(over.body.message).toMatch(/513 bytes of UTF-8; a key is at most 512 bytes/);
    for (const key of keys) {
      const put = await client(agent.url).call('PUT', `/v1/facts/users/${encodeURIComponent(key)}`, { email: 'x@y.z' });
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      const got = await client(agent.url).get(`/v1/facts/user/${encodeURIComponent(key)}?at_least=${put.body.version}.${put.body.epoch}`);
      expect(got.status).toBe(200);
      expect(got.body).toMatchObject({ type: 'user', key, value: { email: 'x@y.z' } });
    }
    const tooLong = await client(agent.url).get(`/v1/facts/user/${'k'.repeat(9000)}`);
    expect(tooLong.status).toBeGreaterThanOrEqual(400);
    expect(tooLong.status).toBeLessThan(500);
    expect(tooLong.body).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    expect(JSON.stringify(tooLong.body).length).toBeLessThan(1000); // never an echo of the whole URL
  });

  it('a body without Content-Type is 415 with a sentence that says what to send, on the agent and the server', async () => {
    const { server, agent, env } = await deployment();
    const targets = [[agent.url, '/v1/facts', undefined], [server.url, `/v1/envs/${env}/facts`, ADMIN]] as const;
    // text/plain is what fetch sends for a string body; form-urlencoded is what `curl -d` sends.
    for (const [[url, path, token], type] of targets.flatMap((t) => [[t, 'text/plain'], [t, 'application/x-www-form-urlencoded']] as const)) {
      const res = await fetch(`${url}${path}`, {
        method: 'POST', body: JSON.stringify({ ops: [upsert('doc', 'k', {})] }),
        headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      });
      expect(res.status, `${url}${path} ${type}`).toBe(415);
      expect(await res.json()).toEqual({ error: 'unsupported_media_type', message: 'send the body as JSON with Content-Type: application/json' });
    }
  });

  it('a relationship whose object or subject is not type:id is a 400; a subject set stays valid', async () => {
    const { server, agent, env } = await deployment();
    const bad = await client(agent.url).post('/v1/facts/relationships', { tuple: 'no-colon#rel@user:1' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/object "no-colon" is not type:id/);
    const direct = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, {
      ops: [{ op: 'upsert', type: 'relationship', key: 'document:1#editor@bob', value: { object: 'document:1', relation: 'editor', subject: 'bob' } }],
    });
    expect(direct.status).toBe(400);
    expect(direct.body.message).toMatch(/subject "bob" is not type:id/);
    expect((await client(agent.url).post('/v1/facts/relationships', { tuple: 'document:1#editor@group:eng#member' })).status).toBe(200);
  });

  it('/sync for a version beyond the head says so instead of waiting', async () => {
    const { server, env } = await deployment();
    const r = await client(server.url, ADMIN).get(`/v1/envs/${env}/sync?version=99&timeout=-1`);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/version 99 does not exist yet: the head of env ".*" is 0/);
  });

  it('a websocket hello with a bad env names the accepted form', async () => {
    const { server } = await deployment();
    const a = await RawAgent.connect(server.url, AGENT, { type: 'hello', env: 'no spaces allowed', agent_id: 'x', applied: 0 });
    closers.push(() => a.close());
    const closed = await a.waitClosed();
    expect(closed.code).toBe(4400);
    const error = a.messages.find((m) => m.type === 'error') as { message: string } | undefined;
    expect(error?.message).toMatch(/invalid hello message: env: environment: 1-64 of A-Z a-z 0-9 _ -/);
    expect(error?.message).not.toMatch(/union/i);
  });
});
