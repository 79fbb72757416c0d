import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nanoid } from 'nanoid';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { TSchema } from '@sinclair/typebox';
import { AGENT, TOKENS, newEnv } from '../src/inproc.js';
import { spawnAgent, spawnServer, type Proc } from '../src/procs.js';
import { client } from '../src/http.js';
import { waitUntil } from '../src/wait.js';
import * as M from '../src/permit-python-models.js';

type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ?? addFormatsModule) as unknown as AddFormats;
const ajv = addFormats(new Ajv({ allErrors: true, strict: false }));

/**
 * The Permit Python SDK (`permit` 2.x), which `npm ci` cannot install, replayed
 * on the wire: each step is a request exactly as the SDK's sources build it
 * (method, path, headers, body; recorded from the real SDK against an agent
 * and transcribed here), and each reply is validated against a JSON Schema of
 * the pydantic model the SDK parses it with (`permit-python-models.ts`). The
 * flows are the quickstart's; then every `api.*` read, list and bulk call, the
 * PDP calls (`check`, `bulk_check`, `filter_objects`, `authorized_users`,
 * `get_user_permissions`, `pdp_api.role_assignments.list`), and the Java
 * SDK's `/user-tenants` and `checkInAllTenants`.
 *
 * Config: `Permit(token=KEY, pdp=AGENT, api_url=AGENT, proxy_facts_via_pdp=True, facts_sync_timeout=10)`.
 */
const KEY = 'python-sdk-key';
// aiohttp sends the client's headers on every request; pydantic makes facts_sync_timeout=10 the float 10.0.
const API = { 'content-type': 'application/json', authorization: `bearer ${KEY}`, 'x-wait-timeout': '10.0' };
const PDP = { 'content-type': 'application/json', authorization: `bearer ${KEY}` };

interface Step { call: string; method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; path: string; headers?: Record<string, string>; body?: unknown; status: number; reply?: TSchema; then?: (body: any) => void }

const S = '/v2/schema/{proj}/{env}';
const F = '/v2/facts/{proj}/{env}';
const steps: Step[] = [
  // ---- the quickstart ----------------------------------------------------
  { call: 'api.resources.create(task)', method: 'POST', path: `${S}/resources`, body: { key: 'task', name: 'Task', actions: { create: {}, read: {} } }, status: 201, reply: M.ResourceRead },
  { call: 'api.resources.create(resource)', method: 'POST', path: `${S}/resources`, body: { key: 'resource', name: 'Resource', actions: { read: {} }, attributes: { hasApproval: { type: 'string' } } }, status: 201, reply: M.ResourceRead },
  { call: 'api.roles.create(admin)', method: 'POST', path: `${S}/roles`, body: { key: 'admin', name: 'Admin', permissions: ['task:create', 'task:read'] }, status: 201, reply: M.RoleRead },
  { call: 'api.roles.create(viewer)', method: 'POST', path: `${S}/roles`, body: { key: 'viewer', name: 'Viewer', permissions: ['task:read', 'task:create'] }, status: 201, reply: M.RoleRead },
  {
    call: 'wait_for_sync(timeout=15) → api.users.sync(elon)', method: 'PUT', path: '/facts/users/auth0%7Celon', headers: { ...API, 'x-wait-timeout': '15' },
    body: { key: 'auth0|elon', email: 'elonmusk@tesla.com', first_name: 'Elon', last_name: 'Musk', attributes: { age: 50, favorite_color: 'red' } }, status: 201, reply: M.UserRead,
    then: (u) => expect(u).toMatchObject({ key: 'auth0|elon', attributes: { age: 50 } }),
  },
  {
    call: 'api.sync_user(john with a role)', method: 'PUT', path: '/facts/users/john@smith.com',
    body: { key: 'john@smith.com', email: 'john@smith.com', role_assignments: [{ role: 'admin', tenant: 'default' }] }, status: 201, reply: M.UserRead,
    then: (u) => expect(u.roles).toEqual([{ role: 'admin', tenant: 'default' }]),
  },
  { call: 'api.create_tenant(tenant2)', method: 'POST', path: '/facts/tenants', body: { key: 'tenant2', name: 'Second Tenant' }, status: 201, reply: M.TenantRead },
  { call: 'api.assign_role(john, viewer, tenant2)', method: 'POST', path: '/facts/role_assignments', body: { role: 'viewer', tenant: 'tenant2', user: 'john@smith.com' }, status: 200, reply: M.RoleAssignmentRead },
  {
    call: 'check(john, create, task in tenant2)', method: 'POST', path: '/allowed', headers: PDP,
    body: { user: { key: 'john@smith.com' }, action: 'create', resource: { type: 'task', tenant: 'tenant2', context: { tenant: 'tenant2' } }, context: {} }, status: 200,
    then: (r) => expect(r.allow).toBe(true),
  },
  { call: 'api.condition_sets.create(england)', method: 'POST', path: `${S}/condition_sets`, body: { key: 'england', type: 'userset', name: 'England', conditions: { allOf: [{ 'user.location': { equals: 'England' } }] } }, status: 201, reply: M.ConditionSetRead },
  {
    call: 'api.condition_sets.create(approved)', method: 'POST', path: `${S}/condition_sets`,
    body: { key: 'approved', type: 'resourceset', resource_id: 'resource', name: 'Approved', conditions: { allOf: [{ 'resource.hasApproval': { equals: 'true' } }] } }, status: 201, reply: M.ConditionSetRead,
  },
  { call: 'api.condition_set_rules.create', method: 'POST', path: `${F}/set_rules`, body: { user_set: 'england', permission: 'resource:read', resource_set: 'approved' }, status: 200, reply: M.list(M.ConditionSetRuleRead) },
  {
    call: 'check(k with location England, read, resource with hasApproval)', method: 'POST', path: '/allowed', headers: PDP,
    body: { user: { key: 'k', attributes: { location: 'England' } }, action: 'read', resource: { type: 'resource', tenant: 't', attributes: { hasApproval: 'true' }, context: { tenant: 't' } }, context: {} }, status: 200,
    then: (r) => expect(r.allow).toBe(true),
  },
  // ---- reads and lists ---------------------------------------------------
  { call: 'api.users.list()', method: 'GET', path: '/facts/users?page=1&per_page=100', status: 200, reply: M.PaginatedResultUserRead, then: (p) => expect(p.total_count).toBe(2) },
  { call: 'api.users.get(john)', method: 'GET', path: '/facts/users/john@smith.com', status: 200, reply: M.UserRead },
  { call: 'api.tenants.list()', method: 'GET', path: '/facts/tenants?page=1&per_page=100', status: 200, reply: M.list(M.TenantRead) },
  { call: 'api.tenants.get(tenant2)', method: 'GET', path: '/facts/tenants/tenant2', status: 200, reply: M.TenantRead },
  {
    call: 'api.tenants.list_tenant_users(tenant2)', method: 'GET', path: '/facts/tenants/tenant2/users?page=1&per_page=100', status: 200, reply: M.PaginatedResultUserRead,
    then: (p) => expect(p.data.map((u: { key: string }) => u.key)).toEqual(['john@smith.com']),
  },
  {
    call: 'api.role_assignments.list(user_key=john)', method: 'GET', path: '/facts/role_assignments?page=1&per_page=100&user=john@smith.com', status: 200, reply: M.list(M.RoleAssignmentRead),
    then: (l) => expect(l).toHaveLength(2),
  },
  { call: 'api.resources.create(folder with a role)', method: 'POST', path: `${S}/resources`, body: { key: 'folder', name: 'Folder', actions: { read: {} }, roles: { owner: { name: 'Owner', permissions: ['read'] } } }, status: 201, reply: M.ResourceRead },
  { call: 'api.resource_instances.create(folder:f1)', method: 'POST', path: '/facts/resource_instances', body: { key: 'f1', tenant: 'default', resource: 'folder' }, status: 201, reply: M.ResourceInstanceRead },
  { call: 'api.resource_instances.get(folder:f1)', method: 'GET', path: '/facts/resource_instances/folder:f1', status: 200, reply: M.ResourceInstanceRead },
  { call: 'api.resource_instances.list(resource_key=folder)', method: 'GET', path: '/facts/resource_instances?page=1&per_page=100&resource=folder', status: 200, reply: M.list(M.ResourceInstanceRead) },
  { call: 'api.relationship_tuples.create', method: 'POST', path: '/facts/relationship_tuples', body: { subject: 'folder:f1', relation: 'parent', object: 'folder:f2', tenant: 'default' }, status: 200, reply: M.RelationshipTupleRead },
  {
    call: 'api.relationship_tuples.list(object_key=folder:f2)', method: 'GET', path: '/facts/relationship_tuples?page=1&per_page=100&object=folder:f2', status: 200, reply: M.list(M.RelationshipTupleRead),
    then: (l) => expect(l).toHaveLength(1),
  },
  {
    call: 'api.role_assignments.assign(john, owner, resource_instance folder:f1)', method: 'POST', path: '/facts/role_assignments',
    body: { role: 'owner', tenant: 'default', resource_instance: 'folder:f1', user: 'john@smith.com' }, status: 200, reply: M.RoleAssignmentRead,
  },
  {
    call: 'authorized_users(read, folder:f1)', method: 'POST', path: '/authorized_users', headers: PDP,
    body: { action: 'read', resource: { type: 'folder', key: 'f1', tenant: 'default', context: { tenant: 'default' } }, context: {} }, status: 200, reply: M.AuthorizedUsersResult,
    then: (r) => expect(r.users['john@smith.com']).toEqual([{ user: 'john@smith.com', tenant: 'default', resource: 'folder:f1', role: 'owner' }]),
  },
  {
    call: 'pdp_api.role_assignments.list(user_key=john)', method: 'GET', path: '/local/role_assignments?page=1&per_page=100&user=john@smith.com', headers: PDP, status: 200, reply: M.list(M.PdpRoleAssignment),
    then: (l) => expect(l).toContainEqual({ user: 'john@smith.com', role: 'owner', tenant: 'default', resource_instance: 'folder:f1' }),
  },
  {
    call: 'get_user_permissions(john, [default])', method: 'POST', path: '/user-permissions', headers: PDP,
    body: { user: { key: 'john@smith.com' }, tenants: ['default'], resources: null, resource_types: null }, status: 200,
    then: (p) => expect(p['__tenant:default'].permissions).toEqual(['task:create', 'task:read']),
  },
  {
    call: 'filter_objects(john, read, [folder:f1, folder:f9])', method: 'POST', path: '/allowed/bulk', headers: PDP,
    body: [
      { user: { key: 'john@smith.com' }, action: 'read', resource: { type: 'folder', key: 'f1', tenant: 'default', attributes: {}, context: { tenant: 'default' } }, context: {} },
      { user: { key: 'john@smith.com' }, action: 'read', resource: { type: 'folder', key: 'f9', tenant: 'default', attributes: {}, context: { tenant: 'default' } }, context: {} },
    ], status: 200,
    then: (r) => expect(r.allow.map((x: { allow: boolean }) => x.allow)).toEqual([true, false]),
  },
  {
    call: 'bulk_check([john read task, nobody read task])', method: 'POST', path: '/allowed/bulk', headers: PDP,
    body: [
      { user: { key: 'john@smith.com' }, action: 'read', resource: { type: 'task', key: null, tenant: 'default', context: { tenant: 'default' } }, context: {} },
      { user: { key: 'nobody' }, action: 'read', resource: { type: 'task', key: null, tenant: 'default', context: { tenant: 'default' } }, context: {} },
    ], status: 200,
    then: (r) => expect(r.allow.map((x: { allow: boolean }) => x.allow)).toEqual([true, false]),
  },
  { call: 'api.resources.list()', method: 'GET', path: `${S}/resources?page=1&per_page=100`, status: 200, reply: M.list(M.ResourceRead) },
  { call: 'api.roles.list()', method: 'GET', path: `${S}/roles?page=1&per_page=100`, status: 200, reply: M.list(M.RoleRead) },
  { call: 'api.condition_sets.list()', method: 'GET', path: `${S}/condition_sets?page=1&per_page=100`, status: 200, reply: M.list(M.ConditionSetRead) },
  { call: 'api.condition_set_rules.list()', method: 'GET', path: `${F}/set_rules?page=1&per_page=100`, status: 200, reply: M.list(M.ConditionSetRuleRead) },
  { call: 'api.resource_actions.list(task)', method: 'GET', path: `${S}/resources/task/actions?page=1&per_page=100`, status: 200, reply: M.list(M.ResourceActionRead) },
  { call: 'api.resource_actions.get(task, read)', method: 'GET', path: `${S}/resources/task/actions/read`, status: 200, reply: M.ResourceActionRead },
  { call: 'api.resource_attributes.list(resource)', method: 'GET', path: `${S}/resources/resource/attributes?page=1&per_page=100`, status: 200, reply: M.list(M.ResourceAttributeRead) },
  { call: 'api.resource_roles.list(folder)', method: 'GET', path: `${S}/resources/folder/roles?page=1&per_page=100`, status: 200, reply: M.list(M.ResourceRoleRead) },
  { call: 'api.resource_roles.get(folder, owner)', method: 'GET', path: `${S}/resources/folder/roles/owner`, status: 200, reply: M.ResourceRoleRead },
  { call: 'api.resource_relations.create(folder, parent)', method: 'POST', path: `${S}/resources/folder/relations`, body: { key: 'parent', name: 'Parent', subject_resource: 'folder' }, status: 201, reply: M.RelationRead },
  { call: 'api.resource_relations.list(folder)', method: 'GET', path: `${S}/resources/folder/relations?page=1&per_page=100`, status: 200, reply: M.list(M.RelationRead) },
  { call: 'api.roles.get(admin)', method: 'GET', path: `${S}/roles/admin`, status: 200, reply: M.RoleRead },
  { call: 'api.resources.get(folder)', method: 'GET', path: `${S}/resources/folder`, status: 200, reply: M.ResourceRead },
  { call: 'api.condition_sets.get(england)', method: 'GET', path: `${S}/condition_sets/england`, status: 200, reply: M.ConditionSetRead },
  // ---- updates, bulk and deletes ------------------------------------------
  { call: 'api.users.update(john)', method: 'PATCH', path: '/facts/users/john@smith.com', body: { first_name: 'John' }, status: 200, reply: M.UserRead },
  { call: 'api.tenants.update(tenant2)', method: 'PATCH', path: '/facts/tenants/tenant2', body: { name: 'Tenant Two' }, status: 200, reply: M.TenantRead },
  { call: 'api.users.unassign_role(john, viewer, tenant2)', method: 'DELETE', path: '/facts/users/john@smith.com/roles', body: { role: 'viewer', tenant: 'tenant2', resource_instance: null }, status: 204 },
  // The SDK's tenants.bulk_create, when facts go through the PDP, posts to /facts/users.
  { call: 'api.tenants.bulk_create([bt1])', method: 'POST', path: '/facts/users', body: { operations: [{ key: 'bt1', name: 'B1' }] }, status: 200, reply: M.BulkOperationResult },
  { call: 'api.users.bulk_create([bu1])', method: 'POST', path: '/facts/bulk/users', body: { operations: [{ key: 'bu1' }] }, status: 200, reply: M.BulkOperationResult },
  { call: 'api.users.bulk_replace([bu1])', method: 'PUT', path: '/facts/bulk/users', body: { operations: [{ key: 'bu1', email: 'bu1@x.io' }] }, status: 200, reply: M.BulkOperationResult },
  { call: 'api.users.bulk_delete([bu1])', method: 'DELETE', path: '/facts/bulk/users', body: { idents: ['bu1'] }, status: 200, reply: M.BulkOperationResult },
  { call: 'api.role_assignments.bulk_assign', method: 'POST', path: '/facts/role_assignments/bulk', body: [{ role: 'viewer', tenant: 'default', user: 'x' }], status: 200, reply: M.BulkRoleAssignmentReport },
  { call: 'api.role_assignments.bulk_unassign', method: 'DELETE', path: '/facts/role_assignments/bulk', body: [{ role: 'viewer', tenant: 'default', user: 'x' }], status: 200, reply: M.BulkRoleUnAssignmentReport },
  { call: 'api.resource_instances.bulk_replace', method: 'PUT', path: '/facts/bulk/resource_instances', body: { operations: [{ key: 'f3', resource: 'folder', tenant: 'default' }] }, status: 200, reply: M.BulkOperationResult },
  { call: 'api.resource_instances.bulk_delete', method: 'DELETE', path: '/facts/bulk/resource_instances', body: { idents: ['folder:f3'] }, status: 200, reply: M.BulkOperationResult },
  { call: 'api.relationship_tuples.delete', method: 'DELETE', path: '/facts/relationship_tuples', body: { subject: 'folder:f1', relation: 'parent', object: 'folder:f2' }, status: 204 },
  // A DELETE without a body still carries the client's Content-Type: application/json.
  { call: 'api.users.delete(elon)', method: 'DELETE', path: '/facts/users/auth0%7Celon', status: 204 },
  { call: 'api.tenants.delete(bt1)', method: 'DELETE', path: '/facts/tenants/bt1', status: 204 },
  { call: 'api.users.get(elon) after delete', method: 'GET', path: '/facts/users/auth0%7Celon', status: 404 },
  // ---- the Java SDK on the same wire (Gson: every field, resourceDelimiter too) ----
  {
    call: 'java getUserTenants(john)', method: 'POST', path: '/user-tenants', headers: { ...PDP, authorization: `Bearer ${KEY}` }, body: { user: { key: 'john@smith.com' }, context: {} }, status: 200,
    reply: M.list(M.JavaTenantDetails), then: (l) => expect(l.map((t: { key: string }) => t.key)).toEqual(['default']),
  },
  {
    call: 'java checkInAllTenants(john, create, task)', method: 'POST', path: '/allowed/all-tenants', headers: { ...PDP, authorization: `Bearer ${KEY}` },
    body: { user: { key: 'john@smith.com' }, action: 'create', resource: { type: 'task', context: {}, resourceDelimiter: ':' }, context: {} }, status: 200,
    reply: M.JavaAllTenantsResult, then: (r) => expect(r.allowed_tenants.map((t: { tenant: { key: string } }) => t.tenant.key)).toEqual(['default']),
  },
  { call: 'java users.sync', method: 'PUT', path: '/facts/users/jane', body: { key: 'jane', email: 'jane@x.io', role_assignments: [{ role: 'viewer', tenant: 'tenant2' }] }, status: 201, reply: M.UserRead },
];

describe('the Permit Python SDK, replayed on the wire, against schemas of its models', () => {
  const env = newEnv();
  const procs: Proc[] = [];
  let agentUrl = '';

  beforeAll(async () => {
    const server = await spawnServer({ REDIS_URL: inject('redisUrl'), KEY_PREFIX: `py${nanoid(6)}`, AUTH_TOKENS: TOKENS });
    procs.push(server);
    const agent = await spawnAgent({ SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'py', AGENT_API_TOKEN: KEY });
    procs.push(agent);
    agentUrl = agent.url;
    await waitUntil(async () => (await client(agentUrl).get('/ready')).status === 200, 'agent ready');
  }, 60_000);
  afterAll(() => Promise.all(procs.map((p) => p.stop())));

  it('every flow: each reply has the status the SDK expects and passes its model', async () => {
    // The SDK's first request: the scope, whose ids become {proj} and {env} of every schema path.
    const scopeReply = await fetch(`${agentUrl}/v2/api-key/scope`, { headers: API });
    const scope = await scopeReply.json();
    expect(ajv.validate(M.APIKeyScopeRead, scope), ajv.errorsText()).toBe(true);
    const failures: string[] = [];
    for (const s of steps) {
      const path = s.path.replace('{proj}', scope.project_id).replace('{env}', scope.environment_id);
      const res = await fetch(`${agentUrl}${path}`, {
        method: s.method, headers: s.headers ?? API, ...(s.body === undefined ? {} : { body: JSON.stringify(s.body) }),
      });
      const text = await res.text();
      const body = text === '' ? undefined : JSON.parse(text);
      if (res.status !== s.status) {
        failures.push(`${s.call}: ${s.method} ${path} answered ${res.status}, the SDK expects ${s.status}: ${text.slice(0, 300)}`);
        continue;
      }
      if (s.reply && !ajv.validate(s.reply, body)) failures.push(`${s.call}: the reply fails the SDK's model: ${ajv.errorsText()} in ${text.slice(0, 300)}`);
      if (s.then) {
        try {
          s.then(body);
        } catch (e) {
          failures.push(`${s.call}: ${(e as Error).message}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('removing an attribute or a relation of a resource type leaves the others (resource_attributes.delete, resource_relations.delete)', async () => {
    const scope = await (await fetch(`${agentUrl}/v2/api-key/scope`, { headers: API })).json();
    const base = `${agentUrl}${S.replace('{proj}', scope.project_id).replace('{env}', scope.environment_id)}/resources`;
    const send = (method: string, path: string, body?: unknown) => fetch(`${base}${path}`, { method, headers: API, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    expect((await fetch(base, { method: 'POST', headers: API, body: JSON.stringify({ key: 'shelf', name: 'Shelf', actions: { read: {} } }) })).status).toBe(201);
    for (const key of ['color', 'size']) expect((await send('POST', '/shelf/attributes', { key, type: 'string' })).status).toBe(201);
    for (const key of ['parent', 'owner']) expect((await send('POST', '/shelf/relations', { key, name: key, subject_resource: 'shelf' })).status).toBe(201);
    expect((await send('DELETE', '/shelf/attributes/color')).status).toBe(204);
    expect((await send('DELETE', '/shelf/relations/owner')).status).toBe(204);
    const keys = async (path: string) => ((await (await send('GET', `${path}?page=1&per_page=100`)).json()) as { key: string }[]).map((x) => x.key).sort();
    expect(await keys('/shelf/attributes')).toEqual(['size']);
    expect(await keys('/shelf/relations')).toEqual(['parent']);
  });

  it('the schemas catch what the SDK would refuse', () => {
    // A reply missing last_action_at, or with a non-UUID id, fails like pydantic does.
    const at = new Date().toISOString();
    const ok = { key: 't', id: '0b5e1d8a-1c2b-5a3d-8e4f-123456789abc', organization_id: '0b5e1d8a-1c2b-5a3d-8e4f-123456789abc', project_id: '0b5e1d8a-1c2b-5a3d-8e4f-123456789abc', environment_id: '0b5e1d8a-1c2b-5a3d-8e4f-123456789abc', created_at: at, updated_at: at, last_action_at: at, name: 't' };
    expect(ajv.validate(M.TenantRead, ok)).toBe(true);
    const { last_action_at: _, ...noLast } = ok;
    expect(ajv.validate(M.TenantRead, noLast)).toBe(false);
    expect(ajv.validate(M.TenantRead, { ...ok, id: 't' })).toBe(false);
    expect(ajv.validate(M.APIKeyScopeRead, { organization_id: 'factsync' })).toBe(false);
  });

  it('wait_for_sync(0) sends no X-Wait-Timeout, so the agent\'s default wait applies; a tiny positive timeout answers at once', async () => {
    // Python's `if self.config.facts_sync_timeout:` drops 0; the request is then an ordinary write that waits for the local apply.
    const noHeader = await fetch(`${agentUrl}/facts/users/w0`, { method: 'PUT', headers: PDP, body: JSON.stringify({ key: 'w0' }) });
    expect(noHeader.status).toBe(201);
    const quick = await fetch(`${agentUrl}/facts/users/w1`, { method: 'PUT', headers: { ...PDP, 'x-wait-timeout': '0.001' }, body: JSON.stringify({ key: 'w1' }) });
    expect(quick.status).toBe(201);
  });
});
