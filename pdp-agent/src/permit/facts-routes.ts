import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static, type TObject, type TSchema, type TUnknown } from '@sinclair/typebox';
import type { TypedApp } from '@factsync/shared/http-app';
import { FactKey, FactsyncError, ok, type Op, type Result } from '@factsync/shared';
import { userDeleteOps, type ForwardOps } from '../write-api.js';
import type { PermitDeps } from './deps.js';
import {
  PermitResourceInstance, PermitResourceInstanceUpdate, PermitRoleAssignment, PermitSetRule, PermitTenant, PermitTenantUpdate, PermitTuple,
  PermitUser, PermitUserRole, PermitUserUpdate, allOk, assignmentOp, instanceKey, setRuleOp, tenantValue, tupleOp, userValue,
  type PermitTenant as TenantBody, type PermitUser as UserBody,
} from './shapes.js';

const Key = Type.Object({ key: FactKey });
const TenantUser = Type.Object({ key: FactKey, user: FactKey });
const Many = <T extends TSchema>(t: T) => Type.Array(t, { minItems: 1, maxItems: 10_000 });
const BulkUsers = Type.Object({ operations: Many(PermitUser) }, { additionalProperties: true });
const BulkTenants = Type.Object({ operations: Many(PermitTenant) }, { additionalProperties: true });
const BulkInstances = Type.Object({ operations: Many(PermitResourceInstance) }, { additionalProperties: true });
const BulkIdents = Type.Object({ idents: Many(FactKey) }, { additionalProperties: true });
const BulkTuples = Type.Object({ operations: Many(PermitTuple) }, { additionalProperties: true });
const BulkTupleIdents = Type.Object({ idents: Many(PermitTuple) }, { additionalProperties: true });
const BulkAssignments = Many(PermitRoleAssignment);
/** `POST /facts/users` also takes `{operations: [tenants]}`: the Python SDK's `tenants.bulk_create` sends it there when facts go through the PDP. */
const UserOrBulkTenants = Type.Union([PermitUser, BulkTenants], { description: 'a user {key, email?, first_name?, last_name?, attributes?, role_assignments?}' });

/** A request typed by its route's params and body schemas. */
type Req<P extends TSchema, B extends TSchema> = FastifyRequest<{ Params: Static<P>; Body: Static<B> }>;
const okOps = (ops: Op[]): Result<Op[]> => ok(ops);

/**
 * Permit's fact writes (users, tenants, role assignments, tuples, resource
 * instances, bulk operations, condition set rules), registered under both of
 * the SDKs' prefixes (`/facts` and `/v2/facts/:proj/:env`). Each call becomes
 * ops written as one version through the agent's one write path, so it waits
 * per X-Wait-Timeout / X-Timeout-Policy exactly like the native routes; the
 * answer is the object as `views.ts` renders it.
 */
export function registerPermitFactsRoutes(app: TypedApp, forward: ForwardOps, d: PermitDeps): void {
  const { views: v, store } = d;
  const route = <P extends TSchema = TObject<{}>, B extends TSchema = TUnknown>(method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string,
    params: P | undefined, body: B | undefined, summary: string, handler: (req: Req<P, B>, reply: FastifyReply) => Promise<unknown>) =>
    app.route({
      method, url, schema: { summary, tags: ['permit'], ...(params ? { params } : {}), ...(body ? { body } : {}) },
      // The type provider types req from a schema it knows; for the generic P and B of this helper, it is said once here.
      handler: (req, reply) => handler(req as unknown as Req<P, B>, reply),
    });
  const keyOf = (req: { params: { key: string } }) => req.params.key;

  /** As the native delete, and Permit's instance role assignments too (the relationships naming the user). */
  const permitUserDeleteOps = (key: string): Op[] => [
    ...userDeleteOps(store, key, d.decider),
    ...[...d.decider.index.reverse.values(`user:${key}`)].map((node): Op => ({ op: 'delete', type: 'relationship', key: `${node}@user:${key}` })),
  ];
  const userOps = (u: UserBody): Result<Op[]> => {
    const assignments = allOk((u.role_assignments ?? []).map((a) => assignmentOp({ ...a, user: u.key }, 'upsert')));
    return assignments.ok ? okOps([{ op: 'upsert', type: 'user', key: u.key, value: userValue(u) }, ...assignments.value]) : assignments;
  };
  const tenantOps = (ts: TenantBody[]): Op[] => ts.map((t) => ({ op: 'upsert', type: 'tenant', key: t.key, value: tenantValue(t) }));

  // ---- users --------------------------------------------------------------
  route('POST', '/users', undefined, UserOrBulkTenants, 'Create a user (Permit)', async (req, reply) => {
    const body = req.body;
    if ('operations' in body) {
      await forward(req, reply, okOps(tenantOps(body.operations)));
      return {};
    }
    await forward(req, reply, userOps(body));
    return reply.status(201).send(v.user(body.key, userValue(body)));
  });
  route('DELETE', '/users', undefined, BulkIdents, 'Delete tenants in one version (the Python SDK\'s tenants.bulk_delete through the PDP)', async (req, reply) => {
    await forward(req, reply, okOps(req.body.idents.map((key): Op => ({ op: 'delete', type: 'tenant', key }))));
    return {};
  });
  route('PUT', '/users/:key', Key, PermitUserUpdate, 'Sync a user with its role assignments (Permit)', async (req, reply) => {
    const u = { ...req.body, key: keyOf(req) };
    const existed = store.get('user', u.key) !== undefined;
    await forward(req, reply, userOps(u));
    return reply.status(existed ? 200 : 201).send(v.user(u.key, userValue(u)));
  });
  route('PATCH', '/users/:key', Key, PermitUserUpdate, 'Update a user: the fields sent are merged into the stored user (Permit)', async (req, reply) => {
    const key = keyOf(req);
    const merged = { ...(store.get('user', key)?.value ?? {}), ...userValue(req.body) };
    await forward(req, reply, okOps([{ op: 'upsert', type: 'user', key, value: merged }]));
    return v.user(key, merged);
  });
  route('DELETE', '/users/:key', Key, undefined, 'Delete a user and its role assignments (Permit)', async (req, reply) => {
    await forward(req, reply, okOps(permitUserDeleteOps(keyOf(req))));
    return reply.status(204).send();
  });
  route('POST', '/users/:key/roles', Key, PermitUserRole, 'Assign a role to a user (Permit)', async (req, reply) => {
    const a = { ...req.body, user: keyOf(req) };
    await forward(req, reply, allOk([assignmentOp(a, 'upsert')]));
    return v.assignment(a);
  });
  route('DELETE', '/users/:key/roles', Key, PermitUserRole, 'Unassign a role from a user (Permit)', async (req, reply) => {
    await forward(req, reply, allOk([assignmentOp({ ...req.body, user: keyOf(req) }, 'delete')]));
    return reply.status(204).send();
  });

  // ---- tenants ------------------------------------------------------------
  route('POST', '/tenants', undefined, PermitTenant, 'Create a tenant (Permit)', async (req, reply) => {
    const t = req.body;
    await forward(req, reply, okOps(tenantOps([t])));
    return reply.status(201).send(v.tenant(t.key, tenantValue(t)));
  });
  route('PATCH', '/tenants/:key', Key, PermitTenantUpdate, 'Update a tenant (Permit)', async (req, reply) => {
    const key = keyOf(req);
    const merged = { ...(store.get('tenant', key)?.value ?? {}), ...tenantValue(req.body) };
    await forward(req, reply, okOps([{ op: 'upsert', type: 'tenant', key, value: merged }]));
    return v.tenant(key, merged);
  });
  route('DELETE', '/tenants/:key', Key, undefined, 'Delete a tenant (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([{ op: 'delete', type: 'tenant', key: keyOf(req) }]));
    return reply.status(204).send();
  });
  route('DELETE', '/tenants/:key/users/:user', TenantUser, undefined, 'Remove a user from a tenant: its role assignments there (Permit)', async (req, reply) => {
    const { key: tenant, user } = req.params;
    const roles = d.decider.index.assignments.get(user)?.get(tenant) ?? [];
    await forward(req, reply, allOk([...roles].map((role) => assignmentOp({ user, role, tenant }, 'delete'))));
    return reply.status(204).send();
  });
  route('POST', '/bulk/tenants', undefined, BulkTenants, 'Create tenants in one version (Permit)', async (req, reply) => {
    await forward(req, reply, okOps(tenantOps(req.body.operations)));
    return {};
  });
  route('DELETE', '/bulk/tenants', undefined, BulkIdents, 'Delete tenants in one version (Permit)', async (req, reply) => {
    await forward(req, reply, okOps(req.body.idents.map((key): Op => ({ op: 'delete', type: 'tenant', key }))));
    return {};
  });

  // ---- role assignments ---------------------------------------------------
  route('POST', '/role_assignments', undefined, PermitRoleAssignment, 'Assign a role (Permit)', async (req, reply) => {
    const a = req.body;
    await forward(req, reply, allOk([assignmentOp(a, 'upsert')]));
    return v.assignment(a);
  });
  route('DELETE', '/role_assignments', undefined, PermitRoleAssignment, 'Unassign a role (Permit)', async (req, reply) => {
    await forward(req, reply, allOk([assignmentOp(req.body, 'delete')]));
    return reply.status(204).send();
  });
  route('POST', '/role_assignments/bulk', undefined, BulkAssignments, 'Assign roles in one version (Permit)', async (req, reply) => {
    const list = req.body;
    await forward(req, reply, allOk(list.map((a) => assignmentOp(a, 'upsert'))));
    return { assignments_created: list.length };
  });
  route('DELETE', '/role_assignments/bulk', undefined, BulkAssignments, 'Unassign roles in one version (Permit)', async (req, reply) => {
    const list = req.body;
    await forward(req, reply, allOk(list.map((a) => assignmentOp(a, 'delete'))));
    return { assignments_removed: list.length };
  });

  // ---- relationship tuples ------------------------------------------------
  route('POST', '/relationship_tuples', undefined, PermitTuple, 'Create a relationship tuple (Permit)', async (req, reply) => {
    const t = req.body;
    await forward(req, reply, okOps([tupleOp(t, 'upsert')]));
    return v.tuple({ subject: t.subject, relation: t.relation, object: t.object, ...(t.tenant ? { tenant: t.tenant } : {}) });
  });
  route('DELETE', '/relationship_tuples', undefined, PermitTuple, 'Delete a relationship tuple (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([tupleOp(req.body, 'delete')]));
    return reply.status(204).send();
  });
  route('POST', '/relationship_tuples/bulk', undefined, BulkTuples, 'Create relationship tuples in one version (Permit)', async (req, reply) => {
    await forward(req, reply, okOps(req.body.operations.map((t) => tupleOp(t, 'upsert'))));
    return {};
  });
  route('DELETE', '/relationship_tuples/bulk', undefined, BulkTupleIdents, 'Delete relationship tuples in one version (Permit)', async (req, reply) => {
    await forward(req, reply, okOps(req.body.idents.map((t) => tupleOp(t, 'delete'))));
    return {};
  });

  // ---- resource instances -------------------------------------------------
  type InstanceBody = { key: string; resource: string; tenant?: string | null; attributes?: Record<string, unknown> | null };
  const instanceOp = (b: InstanceBody): Op => ({
    op: 'upsert', type: 'resource_instance', key: instanceKey(b.resource, b.key),
    value: { tenant: b.tenant ?? 'default', ...(b.attributes ? { attributes: b.attributes } : {}) },
  });
  route('POST', '/resource_instances', undefined, PermitResourceInstance, 'Create a resource instance (Permit)', async (req, reply) => {
    const op = instanceOp(req.body) as Op & { op: 'upsert' };
    await forward(req, reply, okOps([op]));
    return reply.status(201).send(v.instance(op.key, op.value));
  });
  route('PATCH', '/resource_instances/:key', Key, PermitResourceInstanceUpdate, 'Update a resource instance, by type:key (Permit)', async (req, reply) => {
    const key = keyOf(req);
    const stored = store.get('resource_instance', key)?.value as { tenant: string; attributes?: Record<string, unknown> } | undefined;
    if (!stored) throw new FactsyncError('not_found', `no resource instance "${key}" on this agent; address it as type:key, e.g. document:1`);
    const b = req.body;
    const value = { tenant: b.tenant ?? stored.tenant, ...((b.attributes ?? stored.attributes) ? { attributes: b.attributes ?? stored.attributes } : {}) };
    await forward(req, reply, okOps([{ op: 'upsert', type: 'resource_instance', key, value }]));
    return v.instance(key, value);
  });
  route('DELETE', '/resource_instances/:key', Key, undefined, 'Delete a resource instance, by type:key (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([{ op: 'delete', type: 'resource_instance', key: keyOf(req) }]));
    return reply.status(204).send();
  });
  route('PUT', '/bulk/resource_instances', undefined, BulkInstances, 'Create or replace resource instances in one version (Permit)', async (req, reply) => {
    await forward(req, reply, okOps(req.body.operations.map(instanceOp)));
    return {};
  });
  route('DELETE', '/bulk/resource_instances', undefined, BulkIdents, 'Delete resource instances, by type:key, in one version (Permit)', async (req, reply) => {
    await forward(req, reply, okOps(req.body.idents.map((key): Op => ({ op: 'delete', type: 'resource_instance', key }))));
    return {};
  });

  // ---- bulk users ---------------------------------------------------------
  const bulkUsers = async (req: Req<TSchema, typeof BulkUsers>, reply: FastifyReply) => {
    const ops = allOk(req.body.operations.map(userOps));
    await forward(req, reply, ops.ok ? okOps(ops.value.flat()) : ops);
    return {};
  };
  route('POST', '/bulk/users', undefined, BulkUsers, 'Create users in one version (Permit)', bulkUsers);
  route('PUT', '/bulk/users', undefined, BulkUsers, 'Replace users in one version (Permit)', bulkUsers);
  route('DELETE', '/bulk/users', undefined, BulkIdents, 'Delete users in one version (Permit)', async (req, reply) => {
    await forward(req, reply, okOps(req.body.idents.flatMap(permitUserDeleteOps)));
    return {};
  });

  // ---- condition set rules (the SDK sends these to apiUrl, under /v2/facts) ----
  route('POST', '/set_rules', undefined, PermitSetRule, 'Create a condition set rule (Permit)', async (req, reply) => {
    const r = req.body;
    await forward(req, reply, okOps([setRuleOp(r, 'upsert')]));
    return [v.setRule(r)];
  });
  route('DELETE', '/set_rules', undefined, PermitSetRule, 'Delete a condition set rule (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([setRuleOp(req.body, 'delete')]));
    return reply.status(204).send();
  });
}
