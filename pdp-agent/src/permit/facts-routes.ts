import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import { FactsyncError, ok, type Op, type Result } from '@factsync/shared';
import { userDeleteOps, type ForwardOps } from '../write-api.js';
import type { PermitDeps } from './permit-api.js';
import {
  PermitResourceInstance, PermitResourceInstanceUpdate, PermitRoleAssignment, PermitSetRule, PermitTenant, PermitTenantUpdate, PermitTuple,
  PermitUser, PermitUserRole, PermitUserUpdate, allOk, assignmentOp, instanceKey, setRuleOp, tupleOp, userValue,
  type PermitRoleAssignment as RoleAssignmentBody, type PermitTuple as TupleBody, type PermitUser as UserBody,
} from './shapes.js';

const Ids = Type.Object({ proj: Type.String(), env: Type.String() });
const IdsKey = Type.Object({ proj: Type.String(), env: Type.String(), key: Type.String({ minLength: 1, maxLength: 512 }) });
const BulkUsers = Type.Object({ operations: Type.Array(PermitUser, { minItems: 1, maxItems: 10_000 }) }, { additionalProperties: true });
const BulkIdents = Type.Object({ idents: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: 10_000 }) }, { additionalProperties: true });
const BulkTuples = Type.Object({ operations: Type.Array(PermitTuple, { minItems: 1, maxItems: 10_000 }) }, { additionalProperties: true });
const BulkTupleIdents = Type.Object({ idents: Type.Array(PermitTuple, { minItems: 1, maxItems: 10_000 }) }, { additionalProperties: true });
const BulkAssignments = Type.Array(PermitRoleAssignment, { minItems: 1, maxItems: 10_000 });

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
const okOps = (ops: Op[]): Result<Op[]> => ok(ops);

/**
 * `/v2/facts/:proj/:env/…` (DESIGN.md, "Permit SDK compatibility"): each call
 * becomes ops written as one version through the agent's one write path, so it
 * waits per X-Wait-Timeout / X-Timeout-Policy exactly like the native routes.
 * Answers carry the fields of the SDK's `*Read` types.
 */
export function registerPermitFactsRoutes(app: FastifyInstance, forward: ForwardOps, d: PermitDeps): void {
  const base = '/v2/facts/:proj/:env';
  const route = (method: 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'GET', path: string, params: TSchema, body: TSchema | undefined, summary: string, handler: Handler) =>
    app.route({ method, url: `${base}${path}`, schema: { summary, tags: ['permit'], params, ...(body ? { body } : {}) }, handler });
  const keyOf = (req: FastifyRequest) => (req.params as { key: string }).key;
  /** A fact as this agent holds it, in the SDK's read shape. */
  const getRoute = (path: string, type: string, read: (key: string, value: Record<string, unknown>, req: FastifyRequest) => unknown) =>
    route('GET', path, IdsKey, undefined, `A ${type} as this agent has it (Permit)`, async (req) => {
      const key = keyOf(req);
      const f = d.store.get(type, key);
      if (!f) throw new FactsyncError('not_found', `no ${type} "${key}" on this agent`);
      return read(key, f.value, req);
    });

  /** As the native delete, and Permit's instance role assignments too (the relationships naming the user). */
  const permitUserDeleteOps = (key: string): Op[] => [
    ...userDeleteOps(d.store, key),
    ...[...d.decider.index.reverse.values(`user:${key}`)].map((node): Op => ({ op: 'delete', type: 'relationship', key: `${node}@user:${key}` })),
  ];
  const userOps = (u: UserBody): Result<Op[]> => {
    const assignments = allOk((u.role_assignments ?? []).map((a) => assignmentOp({ ...a, user: u.key }, 'upsert')));
    return assignments.ok ? okOps([{ op: 'upsert', type: 'user', key: u.key, value: userValue(u) }, ...assignments.value]) : assignments;
  };
  const userRead = (key: string, value: Record<string, unknown>, req: FastifyRequest) =>
    ({ ...d.meta(req), id: key, key, ...value, attributes: value.attributes ?? {}, roles: d.rolesOf(key) });

  // ---- users --------------------------------------------------------------
  route('POST', '/users', Ids, PermitUser, 'Create a user (Permit)', async (req, reply) => {
    const u = req.body as UserBody;
    await forward(req, reply, userOps(u));
    return reply.status(201).send(userRead(u.key, userValue(u), req));
  });
  route('PUT', '/users/:key', IdsKey, PermitUserUpdate, 'Sync a user with its role assignments (Permit)', async (req, reply) => {
    const u = { ...(req.body as Omit<UserBody, 'key'>), key: keyOf(req) };
    const existed = d.store.get('user', u.key) !== undefined;
    await forward(req, reply, userOps(u));
    return reply.status(existed ? 200 : 201).send(userRead(u.key, userValue(u), req));
  });
  route('PATCH', '/users/:key', IdsKey, PermitUserUpdate, 'Update a user: the fields sent are merged into the stored user (Permit)', async (req, reply) => {
    const key = keyOf(req);
    const stored = d.store.get('user', key)?.value ?? {};
    const merged = { ...stored, ...userValue(req.body as Omit<UserBody, 'key'>) };
    await forward(req, reply, okOps([{ op: 'upsert', type: 'user', key, value: merged }]));
    return userRead(key, merged, req);
  });
  getRoute('/users/:key', 'user', userRead);
  route('DELETE', '/users/:key', IdsKey, undefined, 'Delete a user and its role assignments (Permit)', async (req, reply) => {
    await forward(req, reply, okOps(permitUserDeleteOps(keyOf(req))));
    return reply.status(204).send();
  });
  route('POST', '/users/:key/roles', IdsKey, PermitUserRole, 'Assign a role to a user (Permit)', async (req, reply) => {
    const a = { ...(req.body as Omit<RoleAssignmentBody, 'user'>), user: keyOf(req) };
    await forward(req, reply, allOk([assignmentOp(a, 'upsert')]));
    return assignmentRead(a, req);
  });
  route('DELETE', '/users/:key/roles', IdsKey, PermitUserRole, 'Unassign a role from a user (Permit)', async (req, reply) => {
    await forward(req, reply, allOk([assignmentOp({ ...(req.body as Omit<RoleAssignmentBody, 'user'>), user: keyOf(req) }, 'delete')]));
    return reply.status(204).send();
  });

  // ---- tenants ------------------------------------------------------------
  const tenantValue = (t: { name?: string | null; attributes?: Record<string, unknown> | null }) =>
    Object.fromEntries(Object.entries({ name: t.name, attributes: t.attributes }).filter(([, v]) => v !== undefined && v !== null));
  const tenantRead = (key: string, value: Record<string, unknown>, req: FastifyRequest) => ({ ...d.meta(req), id: key, key, name: key, ...value, attributes: value.attributes ?? {} });
  route('POST', '/tenants', Ids, PermitTenant, 'Create a tenant (Permit)', async (req, reply) => {
    const t = req.body as { key: string; name?: string; attributes?: Record<string, unknown> };
    await forward(req, reply, okOps([{ op: 'upsert', type: 'tenant', key: t.key, value: tenantValue(t) }]));
    return reply.status(201).send(tenantRead(t.key, tenantValue(t), req));
  });
  route('PATCH', '/tenants/:key', IdsKey, PermitTenantUpdate, 'Update a tenant (Permit)', async (req, reply) => {
    const key = keyOf(req);
    const merged = { ...(d.store.get('tenant', key)?.value ?? {}), ...tenantValue(req.body as object) };
    await forward(req, reply, okOps([{ op: 'upsert', type: 'tenant', key, value: merged }]));
    return tenantRead(key, merged, req);
  });
  getRoute('/tenants/:key', 'tenant', tenantRead);
  route('DELETE', '/tenants/:key', IdsKey, undefined, 'Delete a tenant (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([{ op: 'delete', type: 'tenant', key: keyOf(req) }]));
    return reply.status(204).send();
  });

  // ---- role assignments ---------------------------------------------------
  const assignmentRead = (a: RoleAssignmentBody, req: FastifyRequest) =>
    ({ ...d.meta(req), id: `${a.user}/${a.role}/${a.resource_instance ?? a.tenant ?? 'default'}`, user: a.user, role: a.role, tenant: a.tenant ?? 'default', ...(a.resource_instance ? { resource_instance: a.resource_instance } : {}) });
  route('POST', '/role_assignments', Ids, PermitRoleAssignment, 'Assign a role (Permit)', async (req, reply) => {
    const a = req.body as RoleAssignmentBody;
    await forward(req, reply, allOk([assignmentOp(a, 'upsert')]));
    return assignmentRead(a, req);
  });
  route('DELETE', '/role_assignments', Ids, PermitRoleAssignment, 'Unassign a role (Permit)', async (req, reply) => {
    await forward(req, reply, allOk([assignmentOp(req.body as RoleAssignmentBody, 'delete')]));
    return reply.status(204).send();
  });
  route('POST', '/role_assignments/bulk', Ids, BulkAssignments, 'Assign roles in one version (Permit)', async (req, reply) => {
    const list = req.body as RoleAssignmentBody[];
    await forward(req, reply, allOk(list.map((a) => assignmentOp(a, 'upsert'))));
    return { assignments_created: list.length };
  });
  route('DELETE', '/role_assignments/bulk', Ids, BulkAssignments, 'Unassign roles in one version (Permit)', async (req, reply) => {
    const list = req.body as RoleAssignmentBody[];
    await forward(req, reply, allOk(list.map((a) => assignmentOp(a, 'delete'))));
    return { assignments_removed: list.length };
  });

  // ---- relationship tuples ------------------------------------------------
  const tupleRead = (t: TupleBody, req: FastifyRequest) => ({ ...d.meta(req), id: `${t.object}#${t.relation}@${t.subject}`, ...t, tenant: t.tenant ?? 'default' });
  route('POST', '/relationship_tuples', Ids, PermitTuple, 'Create a relationship tuple (Permit)', async (req, reply) => {
    const t = req.body as TupleBody;
    await forward(req, reply, okOps([tupleOp(t, 'upsert')]));
    return tupleRead(t, req);
  });
  route('DELETE', '/relationship_tuples', Ids, PermitTuple, 'Delete a relationship tuple (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([tupleOp(req.body as TupleBody, 'delete')]));
    return reply.status(204).send();
  });
  route('POST', '/relationship_tuples/bulk', Ids, BulkTuples, 'Create relationship tuples in one version (Permit)', async (req, reply) => {
    const { operations } = req.body as { operations: TupleBody[] };
    await forward(req, reply, okOps(operations.map((t) => tupleOp(t, 'upsert'))));
    return {};
  });
  route('DELETE', '/relationship_tuples/bulk', Ids, BulkTupleIdents, 'Delete relationship tuples in one version (Permit)', async (req, reply) => {
    const { idents } = req.body as { idents: TupleBody[] };
    await forward(req, reply, okOps(idents.map((t) => tupleOp(t, 'delete'))));
    return {};
  });

  // ---- resource instances -------------------------------------------------
  const instanceRead = (key: string, value: { tenant: string; attributes?: Record<string, unknown> }, req: FastifyRequest) => {
    const i = key.indexOf(':');
    return { ...d.meta(req), id: key, key: key.slice(i + 1), resource: key.slice(0, i), tenant: value.tenant, attributes: value.attributes ?? {} };
  };
  route('POST', '/resource_instances', Ids, PermitResourceInstance, 'Create a resource instance (Permit)', async (req, reply) => {
    const b = req.body as { key: string; resource: string; tenant?: string | null; attributes?: Record<string, unknown> | null };
    const key = instanceKey(b.resource, b.key);
    const value = { tenant: b.tenant ?? 'default', ...(b.attributes ? { attributes: b.attributes } : {}) };
    await forward(req, reply, okOps([{ op: 'upsert', type: 'resource_instance', key, value }]));
    return reply.status(201).send(instanceRead(key, value, req));
  });
  route('PATCH', '/resource_instances/:key', IdsKey, PermitResourceInstanceUpdate, 'Update a resource instance, by type:key (Permit)', async (req, reply) => {
    const key = keyOf(req);
    const stored = d.store.get('resource_instance', key)?.value as { tenant: string; attributes?: Record<string, unknown> } | undefined;
    if (!stored) throw new FactsyncError('not_found', `no resource instance "${key}" on this agent; address it as type:key, e.g. document:1`);
    const b = req.body as { tenant?: string | null; attributes?: Record<string, unknown> | null };
    const value = { tenant: b.tenant ?? stored.tenant, ...((b.attributes ?? stored.attributes) ? { attributes: b.attributes ?? stored.attributes } : {}) };
    await forward(req, reply, okOps([{ op: 'upsert', type: 'resource_instance', key, value }]));
    return instanceRead(key, value, req);
  });
  route('DELETE', '/resource_instances/:key', IdsKey, undefined, 'Delete a resource instance, by type:key (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([{ op: 'delete', type: 'resource_instance', key: keyOf(req) }]));
    return reply.status(204).send();
  });

  // ---- bulk users ---------------------------------------------------------
  const bulkUsers = async (req: FastifyRequest, reply: FastifyReply) => {
    const { operations } = req.body as { operations: UserBody[] };
    const ops = allOk(operations.map(userOps));
    await forward(req, reply, ops.ok ? okOps(ops.value.flat()) : ops);
    return {};
  };
  route('POST', '/bulk/users', Ids, BulkUsers, 'Create users in one version (Permit)', bulkUsers);
  route('PUT', '/bulk/users', Ids, BulkUsers, 'Replace users in one version (Permit)', bulkUsers);
  route('DELETE', '/bulk/users', Ids, BulkIdents, 'Delete users in one version (Permit)', async (req, reply) => {
    const { idents } = req.body as { idents: string[] };
    await forward(req, reply, okOps(idents.flatMap(permitUserDeleteOps)));
    return {};
  });

  // ---- condition set rules (the SDK sends these to apiUrl, under /v2/facts) ----
  route('POST', '/set_rules', Ids, PermitSetRule, 'Create a condition set rule (Permit)', async (req, reply) => {
    const r = req.body as { user_set: string; permission: string; resource_set: string };
    await forward(req, reply, okOps([setRuleOp(r, 'upsert')]));
    return [{ ...d.meta(req), id: `${r.user_set}/${r.permission}/${r.resource_set}`, key: `${r.user_set}/${r.permission}/${r.resource_set}`, ...r }];
  });
  route('DELETE', '/set_rules', Ids, PermitSetRule, 'Delete a condition set rule (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([setRuleOp(req.body as { user_set: string; permission: string; resource_set: string }, 'delete')]));
    return reply.status(204).send();
  });
}
