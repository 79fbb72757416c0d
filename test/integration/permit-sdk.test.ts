import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nanoid } from 'nanoid';
import { Permit } from 'permitio';
import { AGENT, TOKENS, newEnv } from '../src/inproc.js';
import { spawnAgent, spawnServer, type Proc } from '../src/procs.js';
import { client } from '../src/http.js';
import { ChaosProxy } from '../src/chaos-proxy.js';
import { waitUntil } from '../src/wait.js';

/**
 * The unchanged `permitio` SDK (pinned 2.7.6) against factsync agents, the way
 * Permit's quickstarts use it: `pdp` and `apiUrl` both the agent, the agent's
 * AGENT_API_TOKEN as the token, `proxyFactsViaPdp: true`. Real processes: one
 * server on Redis, agent A (the SDK's) and agent B (a second PDP that must
 * decide the same after each write). No Permit cloud anywhere.
 */
describe('the Permit SDK against factsync', () => {
  const env = newEnv();
  const API = 'permit-sdk-token';
  const procs: Proc[] = [];
  let server: Proc;
  let A: Proc, B: Proc;
  let permit: Permit;
  let permitB: Permit;
  let envId = '';

  const sdk = (url: string, extra: Record<string, unknown> = {}) => new Permit({
    token: API, pdp: url, apiUrl: url, proxyFactsViaPdp: true, factsSyncTimeout: 10, log: { level: 'fatal' }, ...extra,
  } as never);

  beforeAll(async () => {
    const common = { REDIS_URL: inject('redisUrl'), KEY_PREFIX: `p${nanoid(6)}`, AUTH_TOKENS: TOKENS, PING_INTERVAL_MS: '500', LEASE_MS: '3000' };
    server = await spawnServer(common);
    procs.push(server);
    const agentEnv = (id: string) => ({ SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: id, AGENT_API_TOKEN: API, SERVER_TIMEOUT_MS: '2000' });
    [A, B] = await Promise.all([spawnAgent(agentEnv('A')), spawnAgent(agentEnv('B'))]);
    procs.push(A, B);
    await Promise.all([A, B].map((p) => waitUntil(async () => (await client(p.url).get('/readyz')).status === 200, `${p.url} ready`)));
    permit = sdk(A.url);
    permitB = sdk(B.url);
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) if (p.child.signalCode === 'SIGSTOP') p.child.kill('SIGCONT');
    await Promise.all(procs.map((p) => p.stop()));
  });

  /** B decides the same once it applied what A answered with. */
  const synced = () => waitUntil(async () => {
    const [a, b] = await Promise.all([client(A.url, API).get('/v1/status'), client(B.url, API).get('/v1/status')]);
    return b.body.applied >= a.body.applied;
  }, 'agent B to apply what A applied');

  it('scope: the environment is the agent\'s env', async () => {
    // The SDK reads it before its first API call; the same answer for anyone who asks.
    const scope = (await client(A.url, API).get('/v2/api-key/scope')).body;
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const id of ['organization_id', 'project_id', 'environment_id']) expect(scope[id]).toMatch(uuid);
    // Stable for the env: every agent answers the same ids.
    expect((await client(B.url, API).get('/v2/api-key/scope')).body).toEqual(scope);
    envId = scope.environment_id;
  });

  it('the quickstart: resources and roles, a user with a role, tenants, checks in two tenants', async () => {
    const resource = await permit.api.resources.create({
      key: 'document', name: 'Document', actions: { read: {}, write: {}, delete: {} }, attributes: { classification: { type: 'string' } },
    });
    expect(resource).toMatchObject({ key: 'document', name: 'Document' });
    expect(resource.id).toBeTruthy();
    const viewer = await permit.api.roles.create({ key: 'viewer', name: 'Viewer', permissions: ['document:read'] });
    expect(viewer).toMatchObject({ key: 'viewer', permissions: ['document:read'] });
    await permit.api.roles.create({ key: 'admin', name: 'Admin', permissions: ['document:write', 'document:delete'], extends: ['viewer'] } as never);

    const tenant = await permit.api.tenants.create({ key: 'acme', name: 'Acme', attributes: { region: 'eu' } });
    expect(tenant).toMatchObject({ key: 'acme', name: 'Acme' });
    const user = await permit.api.users.sync({
      key: 'john@smith.com', email: 'john@smith.com', first_name: 'John', last_name: 'Smith',
      role_assignments: [{ role: 'admin', tenant: 'default' }],
    });
    // The SDK reads 201 as "created".
    expect(user).toMatchObject({ created: true, user: { key: 'john@smith.com', email: 'john@smith.com', environment_id: envId } });
    expect(await permit.api.users.sync({ key: 'john@smith.com', email: 'john@smith.com', role_assignments: [{ role: 'admin', tenant: 'default' }] }))
      .toMatchObject({ created: false });
    const ra = await permit.api.roleAssignments.assign({ user: 'john@smith.com', role: 'viewer', tenant: 'acme' });
    expect(ra).toMatchObject({ user: 'john@smith.com', role: 'viewer', tenant: 'acme' });

    expect(await permit.check('john@smith.com', 'write', 'document')).toBe(true);
    expect(await permit.check('john@smith.com', 'read', { type: 'document', tenant: 'acme' })).toBe(true);
    expect(await permit.check('john@smith.com', 'write', { type: 'document', tenant: 'acme' })).toBe(false);
    await synced();
    expect(await permitB.check('john@smith.com', 'write', 'document')).toBe(true);
    expect(await permitB.check('john@smith.com', 'write', { type: 'document', tenant: 'acme' })).toBe(false);
    expect(await permit.check('nobody', 'read', 'document')).toBe(false);
  });

  it('ABAC with just-in-time attributes through condition sets', async () => {
    await permit.api.resources.create({ key: 'report', name: 'Report', actions: { read: {} }, attributes: { hasApproval: { type: 'string' } } });
    await permit.api.conditionSets.create({
      key: 'engineers', name: 'Engineers', type: 'userset',
      conditions: { allOf: [{ allOf: [{ 'user.department': { equals: 'Engineering' } }] }] },
    });
    await permit.api.conditionSets.create({
      key: 'approved_reports', name: 'Approved reports', type: 'resourceset', resource_id: 'report',
      conditions: { allOf: [{ allOf: [{ 'resource.hasApproval': { equals: 'true' } }] }] },
    });
    const rule = await permit.api.conditionSetRules.create({ user_set: 'engineers', permission: 'report:read', resource_set: 'approved_reports' });
    expect(rule).toBeTruthy();
    const eng = { key: 'ann', attributes: { department: 'Engineering' } };
    expect(await permit.check(eng, 'read', { type: 'report', attributes: { hasApproval: 'true' } })).toBe(true);
    expect(await permit.check(eng, 'read', { type: 'report', attributes: { hasApproval: 'false' } })).toBe(false);
    expect(await permit.check({ key: 'ann', attributes: { department: 'Sales' } }, 'read', { type: 'report', attributes: { hasApproval: 'true' } })).toBe(false);
  });

  it('ReBAC through a derived resource role, bulk check and user permissions', async () => {
    await permit.api.resources.create({
      key: 'folder', name: 'Folder', actions: { read: {}, write: {} },
      roles: { editor: { name: 'Editor', permissions: ['read', 'write'] } },
    });
    await permit.api.resources.create({
      key: 'file', name: 'File', actions: { read: {}, write: {} },
      relations: { parent: 'folder' },
      roles: {
        editor: {
          name: 'Editor', permissions: ['read', 'write'],
          granted_to: { users_with_role: [{ role: 'editor', on_resource: 'folder', linked_by_relation: 'parent' }] },
        },
      },
    });
    await permit.api.resourceInstances.create({ key: 'f1', resource: 'folder', tenant: 'default' });
    await permit.api.resourceInstances.create({ key: 'd1', resource: 'file', tenant: 'default', attributes: { size: 3 } });
    await permit.api.relationshipTuples.create({ subject: 'folder:f1', relation: 'parent', object: 'file:d1', tenant: 'default' });
    await permit.api.roleAssignments.assign({ user: 'bob', role: 'editor', resource_instance: 'folder:f1', tenant: 'default' });

    expect(await permit.check('bob', 'write', 'file:d1')).toBe(true);
    expect(await permit.check('carl', 'write', 'file:d1')).toBe(false);
    const bulk = await permit.bulkCheck([
      { user: 'bob', action: 'write', resource: 'file:d1' },
      { user: 'carl', action: 'write', resource: 'file:d1' },
      { user: 'john@smith.com', action: 'read', resource: 'document' },
    ]);
    expect(bulk).toEqual([true, false, true]);

    const perms = await permit.getUserPermissions('bob', ['default'], ['file:d1']);
    expect(perms['file:d1']?.permissions).toEqual(['file:read', 'file:write']);
    await synced();
    expect(await permitB.check('bob', 'write', 'file:d1')).toBe(true);
  });

  it('unassigning and deleting revoke access, on both agents', async () => {
    await permit.api.roleAssignments.unassign({ user: 'bob', role: 'editor', resource_instance: 'folder:f1', tenant: 'default' });
    expect(await permit.check('bob', 'write', 'file:d1')).toBe(false);
    await permit.api.users.sync({ key: 'temp', role_assignments: [{ role: 'viewer', tenant: 'default' }] });
    expect(await permit.check('temp', 'read', 'document')).toBe(true);
    await permit.api.users.delete('temp');
    expect(await permit.check('temp', 'read', 'document')).toBe(false);
    await synced();
    expect(await permitB.check('bob', 'write', 'file:d1')).toBe(false);
    expect(await permitB.check('temp', 'read', 'document')).toBe(false);
  });

  it('waitForSync(null) waits until synced; the write is visible at once on the agent', async () => {
    const u = await permit.api.users.waitForSync(null).sync({ key: 'waiter', role_assignments: [{ role: 'viewer', tenant: 'default' }] });
    expect(u).toMatchObject({ user: { key: 'waiter' } });
    expect(await permit.check('waiter', 'read', 'document')).toBe(true);
  });

  it('every other write the SDK makes: updates, bulk operations, permissions, resource roles and relations, deletes', async () => {
    const local = (type: string, key: string) => client(A.url, API).get(`/v1/facts/${type}/${encodeURIComponent(key)}`);

    // Users: update merges; assignRole / unassignRole; bulk create, replace, delete.
    await permit.api.users.sync({ key: 'dora', email: 'dora@x.io', attributes: { team: 'a' } });
    const updated = await permit.api.users.update('dora', { first_name: 'Dora' });
    expect(updated).toMatchObject({ key: 'dora', first_name: 'Dora', email: 'dora@x.io' });
    await permit.api.users.assignRole({ user: 'dora', role: 'viewer', tenant: 'default' });
    expect(await permit.check('dora', 'read', 'document')).toBe(true);
    await permit.api.users.unassignRole({ user: 'dora', role: 'viewer', tenant: 'default' });
    expect(await permit.check('dora', 'read', 'document')).toBe(false);
    await permit.api.users.bulkUserCreate([{ key: 'bulk-1', role_assignments: [{ role: 'viewer', tenant: 'default' }] } as never, { key: 'bulk-2' }]);
    expect(await permit.check('bulk-1', 'read', 'document')).toBe(true);
    await permit.api.users.bulkUserReplace([{ key: 'bulk-2', email: 'b2@x.io' }]);
    expect((await local('user', 'bulk-2')).body.value).toEqual({ email: 'b2@x.io' });
    await permit.api.users.bulkUserDelete(['bulk-1', 'bulk-2']);
    expect((await local('user', 'bulk-1')).status).toBe(404);
    expect(await permit.check('bulk-1', 'read', 'document')).toBe(false);

    // Tenants and resource instances: update, delete.
    await permit.api.tenants.update('acme', { name: 'Acme Corp' });
    expect((await local('tenant', 'acme')).body.value).toEqual({ name: 'Acme Corp', attributes: { region: 'eu' } });
    await permit.api.resourceInstances.update('file:d1', { attributes: { size: 9 } });
    expect((await local('resource_instance', 'file:d1')).body.value).toEqual({ tenant: 'default', attributes: { size: 9 } });
    await permit.api.resourceInstances.create({ key: 'tmp', resource: 'file', tenant: 'default' });
    await permit.api.resourceInstances.delete('file:tmp');
    expect((await local('resource_instance', 'file:tmp')).status).toBe(404);
    await permit.api.tenants.create({ key: 'gone', name: 'Gone' });
    await permit.api.tenants.delete('gone');
    expect((await local('tenant', 'gone')).status).toBe(404);

    // Bulk role assignments and tuples.
    await permit.api.roleAssignments.bulkAssign([{ user: 'eve', role: 'viewer', tenant: 'default' }, { user: 'eve', role: 'editor', resource_instance: 'folder:f1', tenant: 'default' }]);
    expect(await permit.check('eve', 'read', 'document')).toBe(true);
    expect(await permit.check('eve', 'write', 'file:d1')).toBe(true);
    await permit.api.roleAssignments.bulkUnassign([{ user: 'eve', role: 'viewer', tenant: 'default' }, { user: 'eve', role: 'editor', resource_instance: 'folder:f1', tenant: 'default' }]);
    expect(await permit.check('eve', 'write', 'file:d1')).toBe(false);
    await permit.api.resourceInstances.create({ key: 'd2', resource: 'file', tenant: 'default' });
    await permit.api.relationshipTuples.bulkRelationshipTuples([{ subject: 'folder:f1', relation: 'parent', object: 'file:d2', tenant: 'default' }]);
    await permit.api.roleAssignments.assign({ user: 'fay', role: 'editor', resource_instance: 'folder:f1', tenant: 'default' });
    expect(await permit.check('fay', 'write', 'file:d2')).toBe(true);
    await permit.api.relationshipTuples.bulkUnRelationshipTuples([{ subject: 'folder:f1', relation: 'parent', object: 'file:d2' }]);
    expect(await permit.check('fay', 'write', 'file:d2')).toBe(false);
    await permit.api.relationshipTuples.create({ subject: 'folder:f1', relation: 'parent', object: 'file:d2', tenant: 'default' });
    await permit.api.relationshipTuples.delete({ subject: 'folder:f1', relation: 'parent', object: 'file:d2' });
    expect(await permit.check('fay', 'write', 'file:d2')).toBe(false);

    // Tenant roles: update, permissions, delete.
    await permit.api.roles.create({ key: 'auditor', name: 'Auditor', permissions: [] });
    await permit.api.roleAssignments.assign({ user: 'gus', role: 'auditor', tenant: 'default' });
    expect(await permit.check('gus', 'read', 'report')).toBe(false);
    await permit.api.roles.assignPermissions('auditor', ['report:read']);
    expect(await permit.check('gus', 'read', 'report')).toBe(true);
    await permit.api.roles.removePermissions('auditor', ['report:read']);
    expect(await permit.check('gus', 'read', 'report')).toBe(false);
    await permit.api.roles.update('auditor', { permissions: ['document:delete'] });
    expect(await permit.check('gus', 'delete', 'document')).toBe(true);
    await permit.api.roles.delete('auditor');
    expect(await permit.check('gus', 'delete', 'document')).toBe(false);

    // Resource roles and relations declared on their own; a resource role deleted revokes.
    await permit.api.resources.create({ key: 'board', name: 'Board', actions: { view: {}, pin: {} } });
    await permit.api.resourceRoles.create('board', { key: 'pinner', name: 'Pinner', permissions: ['pin'] });
    await permit.api.resourceRelations.create('board', { key: 'space', name: 'Space', subject_resource: 'folder' });
    await permit.api.roleAssignments.assign({ user: 'hal', role: 'pinner', resource_instance: 'board:b1', tenant: 'default' });
    expect(await permit.check('hal', 'pin', 'board:b1')).toBe(true);
    expect((await local('resource', 'board')).body.value.relations).toEqual({ space: 'folder' });
    await permit.api.resourceRoles.delete('board', 'pinner');
    expect(await permit.check('hal', 'pin', 'board:b1')).toBe(false);

    // Condition sets and rules: update, delete.
    await permit.api.conditionSets.update('engineers', { conditions: { allOf: [{ 'user.department': { equals: 'R&D' } }] } });
    const rnd = { key: 'ann', attributes: { department: 'R&D' } };
    expect(await permit.check(rnd, 'read', { type: 'report', attributes: { hasApproval: 'true' } })).toBe(true);
    await permit.api.conditionSetRules.delete({ user_set: 'engineers', permission: 'report:read', resource_set: 'approved_reports' });
    expect(await permit.check(rnd, 'read', { type: 'report', attributes: { hasApproval: 'true' } })).toBe(false);
    await permit.api.conditionSets.delete('approved_reports');
    expect((await local('condition_set', 'approved_reports')).status).toBe(404);
  });

  it('every read and list the SDK makes answers from the agent, with ids that are the same on every agent', async () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    await permit.api.users.sync({ key: 'reader-1', email: 'r1@x.io', role_assignments: [{ role: 'viewer', tenant: 'acme' }] });
    const john = await permit.api.users.get('john@smith.com');
    expect(john).toMatchObject({ key: 'john@smith.com', email: 'john@smith.com', roles: [{ role: 'admin', tenant: 'default' }, { role: 'viewer', tenant: 'acme' }] });
    expect(john.id).toMatch(uuid);
    await synced();
    expect((await permitB.api.users.get('john@smith.com')).id).toBe(john.id);

    const users = await permit.api.users.list({ perPage: 2, page: 1 });
    expect(users.data).toHaveLength(2);
    expect(users.total_count).toBeGreaterThan(2);
    const page2 = await permit.api.users.list({ perPage: 2, page: 2 });
    expect(page2.data.map((u) => u.key)).not.toContain(users.data[0]!.key);

    expect((await permit.api.users.list({ search: 'READER' })).data.map((u) => u.key)).toEqual(['reader-1']);
    const viewers = await permit.api.users.list({ role: 'viewer' });
    expect(viewers.data.map((u) => u.key)).toEqual(expect.arrayContaining(['john@smith.com', 'reader-1']));
    expect(viewers.total_count).toBe(viewers.data.length);
    expect((await permit.api.tenants.list()).map((t) => t.key)).toContain('acme');
    expect(await permit.api.tenants.get('acme')).toMatchObject({ key: 'acme', name: 'Acme Corp', attributes: { region: 'eu' } });
    const acmeUsers = await permit.api.tenants.listTenantUsers({ tenantKey: 'acme' });
    expect(acmeUsers.data.map((u) => u.key).sort()).toEqual(['john@smith.com', 'reader-1']);

    expect(await permit.api.roleAssignments.list({ user: 'john@smith.com' })).toEqual(expect.arrayContaining([
      expect.objectContaining({ user: 'john@smith.com', role: 'viewer', tenant: 'acme' }),
      expect.objectContaining({ user: 'john@smith.com', role: 'admin', tenant: 'default' }),
    ]));
    expect((await permit.api.roleAssignments.list({ tenant: 'acme', role: 'viewer' })).map((a) => a.user).sort()).toEqual(['john@smith.com', 'reader-1']);
    expect(await permit.api.roleAssignments.list({ user: 'fay', resourceInstance: 'folder:f1' } as never))
      .toEqual([expect.objectContaining({ user: 'fay', role: 'editor', resource_instance: 'folder:f1' })]);

    expect(await permit.api.relationshipTuples.list({ object: 'file:d1' } as never))
      .toEqual([expect.objectContaining({ subject: 'folder:f1', relation: 'parent', object: 'file:d1', tenant: 'default' })]);
    expect(await permit.api.resourceInstances.get('file:d1')).toMatchObject({ key: 'd1', resource: 'file', tenant: 'default', attributes: { size: 9 } });
    expect((await permit.api.resourceInstances.list({ resource: 'file' } as never)).map((i) => i.key)).toEqual(expect.arrayContaining(['d1', 'd2']));

    const doc = await permit.api.resources.get('document');
    expect(Object.keys(doc.actions ?? {}).sort()).toEqual(['delete', 'read', 'write']);
    expect((await permit.api.resources.list()).map((r) => r.key)).toEqual(expect.arrayContaining(['document', 'file', 'folder', 'report']));
    expect((await permit.api.resourceActions.list({ resourceKey: 'document' })).map((a) => a.key).sort()).toEqual(['delete', 'read', 'write']);
    expect(await permit.api.resourceActions.get('document', 'read')).toMatchObject({ key: 'read', permission_name: 'document:read' });
    expect(await permit.api.resourceAttributes.list({ resourceKey: 'document' })).toEqual([expect.objectContaining({ key: 'classification', type: 'string' })]);
    expect((await permit.api.resourceRoles.list({ resourceKey: 'folder' })).map((r) => r.key)).toContain('editor');
    expect(await permit.api.roles.get('viewer')).toMatchObject({ key: 'viewer', permissions: ['document:read'] });
    expect((await permit.api.roles.list()).map((r) => r.key)).toEqual(expect.arrayContaining(['admin', 'viewer']));
    expect((await permit.api.conditionSets.list()).map((c) => c.key)).toContain('engineers');
    expect(await permit.api.conditionSets.get('engineers')).toMatchObject({ key: 'engineers', type: 'userset' });

    const missing = await permit.api.users.get('nobody-at-all').then(() => undefined, (e: unknown) => e);
    expect((missing as Error).message).toMatch(/no user "nobody-at-all"/);
  });

  it('bad input is a 4xx whose message the SDK shows', async () => {
    const err = await permit.api.roles.create({ key: 'broken', name: 'Broken', permissions: ['no-colon'] }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/type:action/);
    const err2 = await permit.api.conditionSets.create({ key: 'bad', name: 'Bad', type: 'userset', conditions: { 'user.x': { matches: 'y' } } } as never).then(() => undefined, (e: unknown) => e);
    expect((err2 as Error).message).toMatch(/unknown operator "matches"/);
    const err3 = await permit.api.roleAssignments.assign({ user: 'x', role: 'editor', resource_instance: 'no-type', tenant: 'default' }).then(() => undefined, (e: unknown) => e);
    expect((err3 as Error).message).toMatch(/type:key/);
  });

  it('X-Timeout-Policy fail with a frozen agent gives the SDK an error with a message; ignore answers the write', async () => {
    // Agent C hears the server through a proxy that can hold back the websocket: its writes reach the server, but it never applies them.
    const proxy = new ChaosProxy(Number(new URL(server.url).port));
    const proxyUrl = await proxy.listen();
    const C = await spawnAgent({ SERVER_URL: proxyUrl, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'C', AGENT_API_TOKEN: API });
    procs.push(C);
    try {
      await waitUntil(async () => (await client(C.url).get('/readyz')).status === 200, 'C ready');
      const permitC = sdk(C.url);
      proxy.freezeWebsockets();
      const err = await permitC.api.users.waitForSync(0.5, 'fail').sync({ key: 'late' }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/not applied|sync/i);
      expect((err as { response?: { status?: number } }).response?.status ?? (err as { originalError?: { response?: { status?: number } } }).originalError?.response?.status).toBe(424);
      // The write exists: A has it.
      await waitUntil(async () => (await client(A.url, API).get('/v1/facts/user/late')).status === 200, 'the write to reach A');
      // The default policy (ignore) answers the write although C has not applied it.
      const ok = await permitC.api.users.waitForSync(0.5).sync({ key: 'late2' });
      expect(ok).toMatchObject({ user: { key: 'late2' } });
    } finally {
      proxy.thawWebsockets();
      await proxy.close();
    }
  });
});
