import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeCheck, type CheckRequest } from '@factsync/shared';
import { ADMIN, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { client, upsert } from '../src/http.js';
import { waitUntil } from '../src/wait.js';
import { randomModel } from '../src/policy-model.js';

/**
 * The agent as an OpenID AuthZEN Authorization API 1.0 PDP: every example of
 * the spec (api/authorization-api-1_0.md) answered as the spec answers it,
 * the three evaluations semantics, the searches with pages, bad requests as
 * 400s naming the field, X-Request-ID echoed, and decisions equal to
 * `/allowed` on random models.
 */
describe('AuthZEN 1.0 on the agent', () => {
  const API = 'authzen-token';
  let server: RunningServer;
  const agents: { close(): Promise<void> }[] = [];
  let pdp: ReturnType<typeof client>;
  let agentUrl = '';

  const startPdp = async (env: string) => {
    const a = await startAgent(server.url, { env: { AGENT_ENV: env, AGENT_API_TOKEN: API } });
    agents.push(a);
    await waitUntil(async () => (await client(a.url).get('/readyz')).status === 200, 'agent ready');
    return a;
  };
  const write = async (env: string, ops: unknown[]) => {
    const r = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body.version as number;
  };

  beforeAll(async () => {
    server = await startServer();
    const env = newEnv();
    const a = await startPdp(env);
    agentUrl = a.url;
    pdp = client(a.url, API);
    // The spec's examples: alice may can_read account 123 and documents 1 and 3; bob reads account 123 through a group.
    const version = await write(env, [
      upsert('resource', 'account', { actions: ['can_read', 'can_write'] }),
      upsert('resource', 'document', { actions: ['can_read', 'can_edit', 'read'] }),
      upsert('resource_role', 'account#reader', { permissions: ['can_read'] }),
      upsert('resource_role', 'document#reader', { permissions: ['can_read', 'read'] }),
      upsert('resource_role', 'group#member', { permissions: [] }),
      upsert('relationship', 'account:123#reader@user:alice@example.com', { object: 'account:123', relation: 'reader', subject: 'user:alice@example.com' }),
      upsert('relationship', 'account:123#reader@group:eng#member', { object: 'account:123', relation: 'reader', subject: 'group:eng#member' }),
      upsert('relationship', 'group:eng#member@user:bob@example.com', { object: 'group:eng', relation: 'member', subject: 'user:bob@example.com' }),
      upsert('relationship', 'account:456#reader@user:alice@example.com', { object: 'account:456', relation: 'reader', subject: 'user:alice@example.com' }),
      upsert('relationship', 'account:789#reader@user:alice@example.com', { object: 'account:789', relation: 'reader', subject: 'user:alice@example.com' }),
      ...['1', '3', 'boxcarring.md'].map((d) => upsert('relationship', `document:${d}#reader@user:alice@example.com`, { object: `document:${d}`, relation: 'reader', subject: 'user:alice@example.com' })),
      upsert('resource_instance', 'document:2', { tenant: 'default' }),
    ]);
    await waitUntil(async () => (await pdp.get('/v1/status')).body.applied >= version, 'the model applied');
  }, 60_000);

  afterAll(async () => {
    for (const a of agents) await a.close();
    await server.close();
  });

  it('the Access Evaluation example, with X-Request-ID echoed and the version in a header', async () => {
    const r = await pdp.post('/access/v1/evaluation', {
      subject: { type: 'user', id: 'alice@example.com' }, resource: { type: 'account', id: '123' },
      action: { name: 'can_read', properties: { method: 'GET' } }, context: { time: '1985-10-26T01:22-07:00' },
    }, { 'x-request-id': 'bfe9eb29-ab87-4ca3-be83-a1d5d8305716' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ decision: true });
    expect(r.headers.get('x-request-id')).toBe('bfe9eb29-ab87-4ca3-be83-a1d5d8305716');
    expect(Number(r.headers.get('x-factsync-version'))).toBeGreaterThan(0);
    expect((await pdp.post('/access/v1/evaluation', { subject: { type: 'user', id: 'carol' }, resource: { type: 'account', id: '123' }, action: { name: 'can_read' } })).body)
      .toEqual({ decision: false });
  });

  it('the Access Evaluations examples: no defaults, defaults, a default overridden', async () => {
    const three = (ids: string[], action = 'can_read') => ids.map((id) => ({ subject: { type: 'user', id: 'alice@example.com' }, action: { name: action }, resource: { type: 'document', id }, context: { time: '2024-05-31T15:22-07:00' } }));
    expect((await pdp.post('/access/v1/evaluations', { evaluations: three(['boxcarring.md', 'subject-search.md', 'resource-search.md']) })).body)
      .toEqual({ evaluations: [{ decision: true }, { decision: false }, { decision: false }] });
    const defaults = {
      subject: { type: 'user', id: 'alice@example.com' }, context: { time: '2024-05-31T15:22-07:00' }, action: { name: 'can_read' },
      evaluations: [{ resource: { type: 'document', id: 'boxcarring.md' } }, { resource: { type: 'document', id: 'subject-search.md' } }, { action: { name: 'can_edit' }, resource: { type: 'document', id: 'boxcarring.md' } }],
    };
    expect((await pdp.post('/access/v1/evaluations', defaults)).body).toEqual({ evaluations: [{ decision: true }, { decision: false }, { decision: false }] });
    // Without evaluations the request is one evaluation.
    expect((await pdp.post('/access/v1/evaluations', { subject: { type: 'user', id: 'alice@example.com' }, action: { name: 'can_read' }, resource: { type: 'account', id: '123' } })).body)
      .toEqual({ decision: true });
  });

  it('the three evaluations semantics answer as the spec\'s examples', async () => {
    const body = (semantic: string) => ({
      subject: { type: 'user', id: 'alice@example.com' }, action: { name: 'read' }, options: { evaluations_semantic: semantic },
      evaluations: ['1', '2', '3'].map((id) => ({ resource: { type: 'document', id } })),
    });
    expect((await pdp.post('/access/v1/evaluations', body('execute_all'))).body).toEqual({ evaluations: [{ decision: true }, { decision: false }, { decision: true }] });
    expect((await pdp.post('/access/v1/evaluations', body('deny_on_first_deny'))).body)
      .toEqual({ evaluations: [{ decision: true }, { decision: false, context: { code: '200', reason: 'deny_on_first_deny' } }] });
    expect((await pdp.post('/access/v1/evaluations', body('permit_on_first_permit'))).body).toEqual({ evaluations: [{ decision: true }] });
    // An evaluation that cannot be decided is that evaluation's denial, with the reason; the others are decided.
    const partial = await pdp.post('/access/v1/evaluations', { action: { name: 'read' }, evaluations: [{ resource: { type: 'document', id: '1' } }, { subject: { type: 'user', id: 'alice@example.com' }, resource: { type: 'document', id: '1' } }] });
    expect(partial.body.evaluations[0]).toMatchObject({ decision: false, context: { error: { status: 400, message: expect.stringMatching(/no subject/) } } });
    expect(partial.body.evaluations[1]).toEqual({ decision: true });
  });

  it('the searches: subject search is transitive, resource search pages, action search lists', async () => {
    const subjects = await pdp.post('/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'can_read' }, resource: { type: 'account', id: '123' }, context: { time: '2024-10-26T01:22-07:00' } });
    expect(subjects.status).toBe(200);
    // bob reads through the group (the spec recommends transitive search).
    expect(subjects.body).toEqual({ page: { next_token: '', count: 2 }, results: [{ type: 'user', id: 'alice@example.com' }, { type: 'user', id: 'bob@example.com' }] });

    const search = { subject: { type: 'user', id: 'alice@example.com' }, action: { name: 'can_read' }, resource: { type: 'account' }, page: { limit: 2 } };
    const first = await pdp.post('/access/v1/search/resource', search);
    expect(first.body.results).toEqual([{ type: 'account', id: '123' }, { type: 'account', id: '456' }]);
    expect(first.body.page.next_token).not.toBe('');
    const second = await pdp.post('/access/v1/search/resource', { ...search, page: { token: first.body.page.next_token } });
    expect(second.body).toEqual({ page: { next_token: '', count: 1 }, results: [{ type: 'account', id: '789' }] });
    // A token used with another query is refused.
    const other = await pdp.post('/access/v1/search/resource', { ...search, action: { name: 'can_write' }, page: { token: first.body.page.next_token } });
    expect(other.status).toBe(400);
    expect(other.body.message).toMatch(/page.token belongs to another query/);

    const actions = await pdp.post('/access/v1/search/action', { subject: { type: 'user', id: 'alice@example.com' }, resource: { type: 'document', id: '1' }, context: { time: '2024-10-26T01:22-07:00' } });
    expect(actions.body.results).toEqual([{ name: 'can_read' }, { name: 'read' }]);
    // Every search result, evaluated, is allowed (the spec's "Semantics").
    for (const r of first.body.results) {
      expect((await pdp.post('/access/v1/evaluation', { subject: search.subject, action: search.action, resource: r })).body).toEqual({ decision: true });
    }
  });

  it('the metadata names every endpoint at this PDP', async () => {
    const r = await client(agentUrl).get('/.well-known/authzen-configuration');
    expect(r.status).toBe(200);
    const base = agentUrl;
    expect(r.body).toEqual({
      policy_decision_point: base,
      access_evaluation_endpoint: `${base}/access/v1/evaluation`, access_evaluations_endpoint: `${base}/access/v1/evaluations`,
      search_subject_endpoint: `${base}/access/v1/search/subject`, search_resource_endpoint: `${base}/access/v1/search/resource`,
      search_action_endpoint: `${base}/access/v1/search/action`,
    });
  });

  it('bad requests are 400s naming the field; no token is a 401', async () => {
    const cases: [unknown, RegExp][] = [
      [{ subject: { type: 'user', id: 'a' }, action: { name: 'read' } }, /body is missing required field "resource"/],
      [{ subject: { type: 'user' }, action: { name: 'read' }, resource: { type: 'document', id: '1' } }, /body.subject is missing required field "id"/],
      [{ subject: { type: 'user', id: 'a' }, action: {}, resource: { type: 'document', id: '1' } }, /body.action is missing required field "name"/],
      [{ subject: { type: 'robot', id: 'a' }, action: { name: 'read' }, resource: { type: 'document', id: '1' } }, /subject.type must be "user"/],
      [{ subject: { type: 'user', id: 'a' }, action: { name: 'read' }, resource: { type: 'Document', id: '1' } }, /resource.type "Document" is not a resource type/],
    ];
    for (const [body, message] of cases) {
      const r = await pdp.post('/access/v1/evaluation', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.message).toMatch(message);
    }
    const sem = await pdp.post('/access/v1/evaluations', { evaluations: [], options: { evaluations_semantic: 'first' } });
    expect(sem.status).toBe(400);
    expect(sem.body.message).toMatch(/evaluations_semantic/);
    expect((await client(agentUrl).post('/access/v1/evaluation', { subject: { type: 'user', id: 'a' }, action: { name: 'r' }, resource: { type: 'd', id: '1' } })).status).toBe(401);
  });

  it('decisions equal /allowed on random models', async () => {
    let compared = 0;
    let allowed = 0;
    for (let seed = 20261201; seed < 20261205; seed++) {
      const env = newEnv();
      const a = await startPdp(env);
      const p = client(a.url, API);
      const { ops, checks } = randomModel(seed, 80);
      const version = await write(env, ops);
      await waitUntil(async () => (await p.get('/v1/status')).body.applied >= version, 'model applied');
      const withKey = checks.filter((c) => typeof c.resource !== 'string' && c.resource.key !== undefined);
      const toAuthzen = (c: CheckRequest) => {
        const n = normalizeCheck(c);
        if (!n.ok) throw new Error(n.error);
        const { type, key, tenant, attributes } = n.value.resource;
        return {
          subject: { type: 'user', id: n.value.user.key, properties: n.value.user.attributes },
          action: { name: n.value.action },
          resource: { type, id: key!, properties: { ...attributes, ...(tenant ? { tenant } : {}) } },
        };
      };
      const bulk = await p.post('/allowed/bulk', withKey);
      const az = await p.post('/access/v1/evaluations', { evaluations: withKey.map(toAuthzen) });
      expect(bulk.status).toBe(200);
      expect(az.status).toBe(200);
      expect(az.body.evaluations.map((e: { decision: boolean }) => e.decision)).toEqual(bulk.body.allow.map((x: { allow: boolean }) => x.allow));
      compared += withKey.length;
      allowed += bulk.body.allow.filter((x: { allow: boolean }) => x.allow).length;
      // And one by one, for a few.
      for (const c of withKey.slice(0, 10)) {
        expect((await p.post('/access/v1/evaluation', toAuthzen(c))).body.decision).toBe((await p.post('/allowed', c)).body.allow);
      }
    }
    expect(allowed).toBeGreaterThan(compared * 0.1);
    expect(allowed).toBeLessThan(compared * 0.9);
  });
});
