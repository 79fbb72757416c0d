import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { freePort } from '../src/ports.js';
import { waitUntil } from '../src/wait.js';
import { runTs } from '../src/procs.js';

/**
 * Errors a newcomer meets say what is wrong and where to go: a wrong method is
 * a 405 with Allow, an unknown path names the nearest route, malformed JSON
 * says where it broke, a resource type says it must be lower-case, and a
 * write the agent could not place says whether it may exist and how to retry.
 */
describe('errors point the way', () => {
  let server: RunningServer;
  let agentUrl = '';
  const closers: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    server = await startServer();
    closers.push(() => server.close());
    const agent = await startAgent(server.url, { env: { AGENT_ENV: newEnv() } });
    closers.push(() => agent.close());
    agentUrl = agent.url;
    await waitUntil(() => agent.status().ready, 'agent ready');
  });
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('a wrong method is a 405 with Allow, naming the method to use', async () => {
    const r = await client(agentUrl).get('/allowed');
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('POST');
    expect(r.body).toMatchObject({ error: 'method_not_allowed', message: 'GET is not served at /allowed: use POST' });
    const s = await client(server.url, ADMIN).call('DELETE', '/v1/envs/e/facts');
    expect(s.status).toBe(405);
    expect(s.headers.get('allow')).toBe('GET, POST');
  });

  it('an unknown path names the nearest route', async () => {
    // Singular, as reads are: the write route is plural.
    const r = await client(agentUrl).call('PUT', '/v1/facts/user/bob', { email: 'bob@x.io' });
    expect(r.status).toBe(405);
    expect(r.body.message).toMatch(/PUT is not served at \/v1\/facts\/user\/bob: use GET, or PUT \/v1\/facts\/users\/:key/);
    const t = await client(agentUrl).post('/allowd', {});
    expect(t.status).toBe(404);
    expect(t.body.message).toMatch(/^no route POST \/allowd; did you mean POST \/allowed\?/);
    const far = await client(agentUrl).get('/nothing/like/this/at/all');
    expect(far.status).toBe(404);
    expect(far.body.message).toBe('no route GET /nothing/like/this/at/all (the API is at /docs)');
  });

  it('malformed JSON is one sentence that says where it broke', async () => {
    for (const url of [`${server.url}/v1/envs/e/facts`, `${agentUrl}/v1/facts`]) {
      const r = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{"ops": [}' });
      const body = await r.json();
      expect(r.status).toBe(400);
      // Node's parser names the token and quotes around it; the position, line and column are ours.
      expect(body.message).toMatch(/^the body is not valid JSON \(Unexpected token '\}', .* is not valid JSON, at position 9 \(line 1, column 10\)\); send one JSON value/);
      expect(body.message).not.toMatch(/content-type is set/);
    }
  });

  it('a resource type says it must be lower-case', async () => {
    const a = await client(agentUrl).post('/allowed', { user: 'u', action: 'read', resource: 'Task' });
    expect(a.status).toBe(400);
    expect(a.body.message).toMatch(/types are lower-case/);
    const b = await client(agentUrl).post('/allowed', { user: 'u', action: 'read', resource: { type: 'Task' } });
    expect(b.status).toBe(400);
    expect(b.body.message).toMatch(/types are lower-case/);
  });

  it('a write the agent could not place says it may or may not exist and how to retry it safely', async () => {
    // An agent whose server never answers: its writes retry for the budget, then say what they know.
    const dead = `http://127.0.0.1:${await freePort()}`;
    const agent = await startAgent(dead);
    closers.push(() => agent.close());
    const r = await client(agent.url).post('/v1/facts', { ops: [{ op: 'upsert', type: 'doc', key: 'k', value: {} }] });
    expect(r.status).toBe(502);
    expect(r.body.error).toBe('upstream_unavailable');
    expect(r.body.message).toMatch(/may or may not have been applied.*Idempotency-Key/);
  }, 60_000);

  it('an agent without a token stops at start-up with one line instead of retrying for ever', async () => {
    const out = await runTs('pdp-agent/src/main.ts', [], { AGENT_TOKEN: '', PORT: '0' }).then(() => 'started', (e: Error) => e.message);
    expect(out).toMatch(/factsync agent: AGENT_TOKEN is empty: set it to a token whose role is agent/);
    expect(out).not.toMatch(/\n\s+at /);
  });

  it('a bad value stops either process before it listens, with one line naming the variable and the fix', async () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      ['pdp-agent/src/main.ts', { AGENT_TOKEN: 'x', SERVER_URL: 'notaurl' }, /^factsync agent: SERVER_URL contains "notaurl", which is not a URL \(e\.g\. http:\/\/127\.0\.0\.1:7002\)$/],
      ['pdp-agent/src/main.ts', { AGENT_TOKEN: 'x', LOG_LEVEL: 'loud' }, /^factsync agent: LOG_LEVEL="loud" is invalid: use one of fatal, error, warn, info, debug, trace, silent$/],
      ['pdp-agent/src/main.ts', { AGENT_TOKEN: 'x', PORT: 'abc' }, /^factsync agent: PORT="abc" is invalid: expected an integer from 0 to 65535$/],
      ['server/src/main.ts', { REDIS_URL: 'nope' }, /^factsync server: REDIS_URL contains "nope", which is not a URL \(e\.g\. redis:\/\/127\.0\.0\.1:6379\)$/],
      ['server/src/main.ts', { LOG_LEVEL: 'loud' }, /^factsync server: LOG_LEVEL="loud" is invalid: use one of/],
      ['server/src/main.ts', { PORT: '70000' }, /^factsync server: PORT="70000" is invalid: expected an integer from 0 to 65535$/],
    ];
    for (const [entry, env, expected] of cases) {
      const out = await runTs(entry, [], { PORT: '0', ...env }).then(() => 'started', (e: Error) => e.message);
      expect(out, `${entry} ${JSON.stringify(env)}`).toMatch(/ exited 2: /); // 2: configuration (1 is a shutdown that overran its timeout)
      const lines = out.replace(/^.* exited 2: /, '').trim().split('\n');
      expect(lines, `${entry} ${JSON.stringify(env)}`).toHaveLength(1);
      expect(lines[0]).toMatch(expected);
    }
  });
});
