import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { client, upsert } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/**
 * Invariant 10 on the PDP: with any policy the write limits allow, no request
 * holds the agent's event loop for long. The policy here is the hostile one
 * that once made a bulk of 1,000 checks take 12 s and a subject search a
 * minute: 1,000 rules on one permission, each with a 255-way anyOf.
 */
describe('bounded work per request on the agent', () => {
  const RULES = 1000;
  const USERS = 3000;
  let server: RunningServer;
  let agent: Awaited<ReturnType<typeof startAgent>>;
  let env: string;
  let head = 0;
  beforeAll(async () => {
    server = await startServer();
    env = newEnv();
    agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    const admin = client(server.url, ADMIN);
    const write = async (ops: unknown[]) => {
      const r = await admin.post(`/v1/envs/${env}/facts`, { ops });
      expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
      head = r.body.version;
    };
    await write([upsert('resource', 'doc', { actions: ['read'] })]);
    for (let from = 0; from < RULES; from += 100) {
      await write(Array.from({ length: 100 }, (_, k) => from + k).flatMap((i) => [
        upsert('condition_set', `us${i}`, { kind: 'userset', conditions: { anyOf: Array.from({ length: 255 }, (_, j) => ({ 'user.dept': { equals: `d${i}-${j}` } })) } }),
        upsert('condition_set_rule', `us${i}/doc:read/doc`, { user_set: `us${i}`, permission: 'doc:read', resource_set: 'doc' }),
      ]));
    }
    await write(Array.from({ length: USERS }, (_, i) => upsert('user', `u${String(i).padStart(5, '0')}`, { attributes: { dept: 'none' } })));
    await waitUntil(() => agent.store.version === head, 'the agent at the hostile policy', 60_000);
  }, 120_000);
  afterAll(async () => {
    await agent?.close();
    await server?.close();
  });

  const api = () => client(agent.url);

  it('one check stops at its work budget: a deny that says why, counted', async () => {
    const r = await api().post('/allowed', { user: 'u00001', action: 'read', resource: 'doc:1', debug: true });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ allow: false, reason: expect.stringMatching(/took more than 30000 steps/) });
    expect((await agent.metrics.checksLimited.get()).values[0]?.value).toBeGreaterThanOrEqual(1);
  });

  it('a bulk of 1,000 checks yields: health checks are answered meanwhile, changes wait and every check is at one version', async () => {
    const v0 = agent.store.version;
    const bulk = api().post('/allowed/bulk', Array.from({ length: 1000 }, (_, i) => ({ user: `u${String(i).padStart(5, '0')}`, action: 'read', resource: 'doc:1' })));
    let done = false;
    void bulk.then(() => (done = true));
    await waitUntil(() => agent.gate.held, 'the bulk to yield with the gate held', 30_000, 1);
    expect((await api().get('/healthz')).status).toBe(200);
    // A change written now waits for the bulk: the bulk answers at the version it started at.
    const w = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'during', {})] });
    if (!done) {
      expect(agent.gate.held).toBe(true);
      expect(agent.store.version).toBe(v0);
    }
    const answer = await bulk;
    expect(answer.status).toBe(200);
    expect(answer.body.version).toBe(v0);
    expect(answer.body.allow).toHaveLength(1000);
    await waitUntil(() => agent.store.version === w.body.version, 'the change applied once the bulk is done');
  });

  it('a subject search (AuthZEN) and /authorized_users end their page early with a cursor that continues', async () => {
    const search = await api().post('/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'read' }, resource: { type: 'doc', id: '1' } });
    expect(search.status).toBe(200);
    expect(search.body.page.next_token).not.toBe('');
    const again = await api().post('/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'read' }, resource: { type: 'doc', id: '1' }, page: { token: search.body.page.next_token } });
    expect(again.status).toBe(200);

    const first = await api().post('/authorized_users', { action: 'read', resource: { type: 'doc', key: '1' }, limit: 10 });
    expect(first.status).toBe(200);
    const token = first.headers.get('x-next-page-token');
    expect(token).toBeTruthy();
    expect(Object.keys(first.body.users).length).toBeLessThanOrEqual(10);
    const next = await api().post('/authorized_users', { action: 'read', resource: { type: 'doc', key: '1' }, limit: 10, page_token: token });
    expect(next.status).toBe(200);
  });
});
