import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nanoid } from 'nanoid';
import { createClient, FactsyncClientError, type FactsyncClient } from '@factsync/sdk';
import { ADMIN, AGENT, TOKENS, newEnv } from '../src/inproc.js';
import { spawnAgent, spawnServer, type Proc } from '../src/procs.js';
import { client } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/**
 * Every agent decides (docs/api.md, "Decisions on the agent"), with real
 * processes: two server replicas on Redis, agent A on r1 (where the writes go)
 * and agent B on r2 (where the checks go, with `at_least` the version A's write
 * returned), both requiring AGENT_API_TOKEN; B logs its decisions.
 */
describe('permission checks on the agent', () => {
  const env = newEnv();
  const API = 'local-api-token';
  const procs: Proc[] = [];
  let servers: Proc[];
  let A: Proc, B: Proc;
  let a: FactsyncClient, b: FactsyncClient;

  const agentEnv = (id: string, url: string, extra: Record<string, string> = {}) =>
    ({ SERVER_URL: url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: id, AGENT_API_TOKEN: API, USAGE_REPORT_MS: '100', ...extra });
  const ready = (p: Proc) => waitUntil(async () => (await client(p.url).get('/readyz')).status === 200, `${p.url} ready`);

  beforeAll(async () => {
    const common = { REDIS_URL: inject('redisUrl'), KEY_PREFIX: `d${nanoid(6)}`, AUTH_TOKENS: TOKENS, PING_INTERVAL_MS: '500' };
    servers = await Promise.all([spawnServer({ ...common, REPLICA_ID: 'r1' }), spawnServer({ ...common, REPLICA_ID: 'r2' })]);
    [A, B] = await Promise.all([spawnAgent(agentEnv('A', servers[0]!.url)), spawnAgent(agentEnv('B', servers[1]!.url, { DECISION_LOG: 'true' }))]);
    procs.push(...servers, A, B);
    await Promise.all([A, B].map(ready));
    a = createClient({ url: A.url, token: API });
    b = createClient({ url: B.url, token: API });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
  });

  it('RBAC quickstart: admin in default may retrieve a task, only viewer in tenant2 may not create there', async () => {
    await a.policy.resources.upsert('task', { actions: ['retrieve', 'create', 'update'] });
    await a.policy.roles.upsert('viewer', { permissions: ['task:retrieve'] });
    await a.policy.roles.upsert('admin', { permissions: ['task:create', 'task:update'], extends: ['viewer'] });
    const { version } = await a.users.sync('john@smith.com', { email: 'john@smith.com', roles: [{ role: 'admin' }, { role: 'viewer', tenant: 'tenant2' }] });

    // On B, the next line after the write on A sees it.
    expect(await b.check('john@smith.com', 'retrieve', 'task', { atLeast: version })).toBe(true);
    expect(await b.check('john@smith.com', 'create', { type: 'task', tenant: 'tenant2' }, { atLeast: version })).toBe(false);
    expect(await b.check('john@smith.com', 'retrieve', { type: 'task', tenant: 'tenant2' })).toBe(true);
    const d = await b.decide('john@smith.com', 'retrieve', 'task', { debug: true });
    expect(d).toMatchObject({ allow: true, result: true, reason: 'role "admin" in tenant "default" grants task:retrieve' });
    expect(d.version).toBeGreaterThanOrEqual(version);

    // Unknown users, resources and actions are denied, never an error.
    expect(await b.check('nobody', 'retrieve', 'task')).toBe(false);
    expect(await b.check('john@smith.com', 'retrieve', 'spaceship')).toBe(false);
    expect(await b.check('john@smith.com', 'fly', 'task')).toBe(false);

    // Unassigning revokes, at the version of the unassign.
    const un = await a.roleAssignments.unassign({ user: 'john@smith.com', role: 'viewer', tenant: 'tenant2' });
    expect(await b.check('john@smith.com', 'retrieve', { type: 'task', tenant: 'tenant2' }, { atLeast: un.version })).toBe(false);
  });

  it('tenant isolation: an instance is decided in its stored tenant unless the check names one', async () => {
    await a.policy.resources.upsert('document', { actions: ['read', 'write'] });
    await a.policy.roles.upsert('reader', { permissions: ['document:read'] });
    await a.roleAssignments.assign({ user: 'ann', role: 'reader', tenant: 'acme' });
    const { version } = await a.policy.resourceInstances.upsert('document:acme-1', { tenant: 'acme' });
    await a.policy.resourceInstances.upsert('document:globex-1', { tenant: 'globex' });
    expect(await b.check('ann', 'read', 'document:acme-1', { atLeast: version + 1 })).toBe(true);
    expect(await b.check('ann', 'read', 'document:globex-1')).toBe(false);
    expect(await b.check('ann', 'read', 'document')).toBe(false); // default tenant
    expect(await b.check('ann', 'read', { type: 'document', key: 'globex-1', tenant: 'acme' })).toBe(true);
    expect(await b.check('ann', 'write', 'document:acme-1')).toBe(false);
  });

  it('ABAC with just-in-time attributes overriding stored ones, and the resource\'s', async () => {
    await a.policy.resources.upsert('report', { actions: ['read'], attributes: { hasApproval: 'string' } });
    await a.policy.conditionSets.upsert('engineers', { kind: 'userset', conditions: { allOf: [{ allOf: [{ 'user.department': { equals: 'Engineering' } }] }] } });
    await a.policy.conditionSets.upsert('approved', { kind: 'resourceset', resource: 'report', conditions: { allOf: [{ 'resource.hasApproval': { equals: 'true' } }] } });
    await a.policy.setRules.create({ user_set: 'engineers', permission: 'report:read', resource_set: 'approved' });
    const { version } = await a.users.sync('sam', { attributes: { department: 'Sales' } });

    const approved = { type: 'report', attributes: { hasApproval: 'true' } };
    expect(await b.check({ key: 'jit-user', attributes: { department: 'Engineering' } }, 'read', approved, { atLeast: version })).toBe(true);
    expect(await b.check({ key: 'jit-user', attributes: { department: 'Engineering' } }, 'read', { type: 'report', attributes: { hasApproval: 'false' } })).toBe(false);
    expect(await b.check('sam', 'read', approved)).toBe(false);
    expect(await b.check({ key: 'sam', attributes: { department: 'Engineering' } }, 'read', approved)).toBe(true);

    // A stored instance attribute counts too; the check's attributes override it.
    const inst = await a.policy.resourceInstances.upsert('report:q3', { tenant: 'default', attributes: { hasApproval: 'true' } });
    const eng = { key: 'jit-user', attributes: { department: 'Engineering' } };
    expect(await b.check(eng, 'read', 'report:q3', { atLeast: inst.version })).toBe(true);
    expect(await b.check(eng, 'read', { type: 'report', key: 'q3', attributes: { hasApproval: 'no' } })).toBe(false);
    const d = await b.decide(eng, 'read', 'report:q3', { debug: true });
    expect(d.reason).toBe('rule engineers/report:read/approved: user set "engineers" and resource set "approved" match');
  });

  it('ReBAC: editors of a folder may write its files (granted_to), members of group:eng get what group:eng#member was granted', async () => {
    await a.policy.resources.upsert('folder', { actions: ['read', 'write'] });
    await a.policy.resources.upsert('file', { actions: ['read', 'write'] });
    await a.policy.resourceRoles.upsert('folder', 'editor', { permissions: ['read', 'write'] });
    await a.policy.resourceRoles.upsert('file', 'editor', { permissions: ['read', 'write'], granted_to: [{ role: 'editor', on: 'folder', via: 'parent' }] });
    await a.relationships.write('file:d1#parent@folder:f1');
    await a.relationships.write('folder:f1#editor@group:eng#member');
    const { version } = await a.relationships.write('group:eng#member@user:bob');

    expect(await b.check('bob', 'write', 'file:d1', { atLeast: version })).toBe(true);
    expect(await b.check('alice', 'write', 'file:d1')).toBe(false);
    expect(await b.check('bob', 'write', 'file:other')).toBe(false);
    const d = await b.decide('bob', 'write', 'file:d1', { debug: true });
    expect(d.reason).toBe('"bob" holds group:eng#member, which gives folder:f1#editor, which gives file:d1#editor');

    const perms = await b.userPermissions({ user: 'bob' });
    expect(perms['file:d1']).toEqual({
      resource: { key: 'd1', type: 'file', attributes: {} }, tenant: { key: 'default', attributes: {} }, permissions: ['file:read', 'file:write'], roles: ['editor'],
    });
    expect(perms['folder:f1']?.permissions).toEqual(['folder:read', 'folder:write']);

    expect(await b.bulkCheck([
      { user: 'bob', action: 'write', resource: 'file:d1' },
      { user: 'alice', action: 'write', resource: 'file:d1' },
      { user: 'bob', action: 'read', resource: 'folder:f1' },
    ])).toEqual([true, false, true]);

    // Removing bob from the group revokes the derived access.
    const del = await a.relationships.delete('group:eng#member@user:bob');
    expect(await b.check('bob', 'write', 'file:d1', { atLeast: del.version })).toBe(false);
  });

  it('user permissions list tenants with roles and permissions in Permit\'s shape', async () => {
    await a.policy.resources.upsert('invoice', { actions: ['view', 'pay'] });
    await a.policy.roles.upsert('accountant', { permissions: ['invoice:view', 'invoice:pay'] });
    await a.tenants.create('acme-fin', { name: 'Acme', attributes: { region: 'eu' } });
    const { version } = await a.roleAssignments.assign({ user: 'carol', role: 'accountant', tenant: 'acme-fin' });
    const perms = await b.userPermissions({ user: 'carol', tenants: ['acme-fin'] }, { atLeast: version });
    expect(perms).toEqual({
      '__tenant:acme-fin': { tenant: { key: 'acme-fin', attributes: { region: 'eu' } }, permissions: ['invoice:pay', 'invoice:view'], roles: ['accountant'] },
    });
  });

  it('at_least beyond what the agent applied is 504 not_synced after X-Wait-Timeout', async () => {
    const s = await b.status();
    const err = await b.check('x', 'read', 'task', { atLeast: s.applied + 1000, timeout: 0.2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FactsyncClientError);
    expect(err).toMatchObject({ status: 504, code: 'not_synced' });
  });

  it('malformed checks and policy facts are 400s that say what is wrong; no token is 401', async () => {
    const raw = client(B.url, API);
    const cases: [unknown, RegExp][] = [
      [{ user: 'u', resource: 'task' }, /action/],
      [{ user: 'u', action: 'read', resource: 'Not A Type:1' }, /type:key/],
      [{ user: { attributes: {} }, action: 'read', resource: 'task' }, /user/],
      [{ user: 'u', action: 'read', resource: { key: '1' } }, /type/],
      [{ user: 'u', action: 'read', resource: 'task', extra: 1 }, /extra/],
    ];
    for (const [body, message] of cases) {
      const r = await raw.post('/allowed', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error).toBe('invalid_request');
      expect(r.body.message).toMatch(message);
    }
    expect((await raw.post('/allowed/bulk', { user: 'u' })).status).toBe(400);
    expect((await raw.post('/user-permissions', { user: 'u', resources: ['document'] })).body.message).toMatch(/resource_types/);
    expect((await client(B.url).post('/allowed', { user: 'u', action: 'read', resource: 'task' })).status).toBe(401);

    const bad: [unknown, RegExp][] = [
      [{ op: 'upsert', type: 'condition_set', key: 'cs', value: { kind: 'userset', conditions: { 'user.dept': { matches: 'x' } } } }, /unknown operator "matches".*equals/],
      [{ op: 'upsert', type: 'condition_set', key: 'cs', value: { kind: 'userset', conditions: { dept: { equals: 'x' } } } }, /user\.<name>/],
      [{ op: 'upsert', type: 'role', key: 'r', value: { permissions: ['read'] } }, /type:action/],
      [{ op: 'upsert', type: 'resource_role', key: 'editor', value: { permissions: ['read'] } }, /type#role/],
      [{ op: 'upsert', type: 'resource_instance', key: 'doc1', value: { tenant: 't' } }, /type:id/],
      [{ op: 'upsert', type: 'condition_set_rule', key: 'x', value: { user_set: 'a', permission: 'doc:read', resource_set: 'b' } }, /must have key "a\/doc:read\/b"/],
    ];
    for (const [op, message] of bad) {
      const r = await client(A.url, API).post('/v1/facts', { ops: [op] });
      expect(r.status, JSON.stringify(op)).toBe(400);
      expect(r.body.message).toMatch(message);
    }
  });

  it('decisions are logged with their reason when DECISION_LOG=true', async () => {
    await b.check('john@smith.com', 'retrieve', 'task');
    await waitUntil(() => B.lines.some((l) => l.includes('"decision"') && l.includes('john@smith.com')), 'a decision log line');
    const line = JSON.parse(B.lines.find((l) => l.includes('"decision"') && l.includes('john@smith.com') && l.includes('"allow":true'))!) as { decision: Record<string, unknown> };
    expect(line.decision).toMatchObject({ user: 'john@smith.com', action: 'retrieve', allow: true, tenant: 'default' });
    expect(line.decision.reason).toMatch(/role "admin"/);
    expect(typeof line.decision.version).toBe('number');
    expect(A.lines.some((l) => l.includes('"decision"'))).toBe(false);
  });

  it('MAU: each user checked this month on any agent counts once, at /usage and as factsync_mau', async () => {
    const admin = client(servers[0]!.url, ADMIN);
    const before = (await admin.get(`/v1/envs/${env}/usage`)).body.mau as number;
    const keys = Array.from({ length: 25 }, (_, i) => `mau-${i}`);
    // Overlapping sets on the two agents, each key checked several times.
    for (const k of keys.slice(0, 15)) for (let i = 0; i < 3; i++) await a.check(k, 'read', 'task');
    await b.bulkCheck(keys.slice(10).map((k) => ({ user: k, action: 'read', resource: 'task' })));
    await waitUntil(async () => (await admin.get(`/v1/envs/${env}/usage`)).body.mau === before + 25, 'usage to count 25 more users', 20_000);
    const month = new Date().toISOString().slice(0, 7);
    expect((await admin.get(`/v1/envs/${env}/usage?month=${month}`)).body).toEqual({ env, month, mau: before + 25 });
    expect((await admin.get(`/v1/envs/${env}/usage?month=1999-01`)).body.mau).toBe(0);
    expect((await admin.get(`/v1/envs/${env}/usage?month=2026-13`)).status).toBe(400);
    const metrics = await (await fetch(`${servers[1]!.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`factsync_mau\\{env="${env}"\\} ${before + 25}`));
  });
});
