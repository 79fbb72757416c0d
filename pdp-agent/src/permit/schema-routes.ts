import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import { FactsyncError, ok, resourceRoleKey, type Op, type Result } from '@factsync/shared';
import type { ForwardOps } from '../write-api.js';
import type { PermitDeps } from './permit-api.js';
import {
  PermitConditionSet, PermitConditionSetUpdate, PermitPermissions, PermitRelation, PermitResource, PermitResourceRole, PermitResourceUpdate,
  PermitRole, PermitRoleUpdate, conditionSetValue, resourceOps, resourceRoleValue, roleValue,
  type PermitConditionSet as ConditionSetBody, type PermitResource as ResourceBody, type PermitResourceRole as ResourceRoleBody, type PermitRole as RoleBody,
} from './shapes.js';

const Ids = Type.Object({ proj: Type.String(), env: Type.String() });
const IdsKey = Type.Object({ proj: Type.String(), env: Type.String(), key: Type.String({ minLength: 1, maxLength: 170 }) });
const IdsRole = Type.Object({ proj: Type.String(), env: Type.String(), key: Type.String({ minLength: 1, maxLength: 170 }), role: Type.String({ minLength: 1, maxLength: 170 }) });

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
const okOps = (ops: Op[]): Result<Op[]> => ok(ops);
const upsert = (type: string, key: string, value: Record<string, unknown>): Op => ({ op: 'upsert', type, key, value });
const remove = (type: string, key: string): Op => ({ op: 'delete', type, key });

/**
 * `/v2/schema/:proj/:env/…`: the policy model the SDK defines (resources with
 * actions, attributes, roles and relations; tenant roles; condition sets)
 * becomes policy facts (DESIGN.md, "Decisions on the agent") on the same log.
 */
export function registerPermitSchemaRoutes(app: FastifyInstance, forward: ForwardOps, d: PermitDeps): void {
  const base = '/v2/schema/:proj/:env';
  const route = (method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, params: TSchema, body: TSchema | undefined, summary: string, handler: Handler) =>
    app.route({ method, url: `${base}${path}`, schema: { summary, tags: ['permit'], params, ...(body ? { body } : {}) }, handler });
  const p = (req: FastifyRequest) => req.params as { key: string; role?: string };
  const stored = (type: string, key: string) => d.store.get(type, key)?.value as Record<string, unknown> | undefined;
  const need = (type: string, key: string, what: string) => {
    const v = stored(type, key);
    if (!v) throw new FactsyncError('not_found', `no ${what} "${key}" on this agent`);
    return v;
  };

  // ---- resources ----------------------------------------------------------
  const resourceRead = (r: ResourceBody, req: FastifyRequest) => ({
    ...d.meta(req), id: r.key, key: r.key, name: r.name ?? r.key, description: r.description ?? null,
    actions: Object.fromEntries(Object.entries(r.actions ?? {}).map(([k, a]) => [k, { id: `${r.key}:${k}`, key: k, name: a.name ?? k, description: a.description ?? null }])),
    attributes: r.attributes ?? {}, roles: r.roles ?? {}, relations: r.relations ?? {},
  });
  route('POST', '/resources', Ids, PermitResource, 'Create a resource type with its actions, attributes, roles and relations (Permit)', async (req, reply) => {
    const r = req.body as ResourceBody;
    await forward(req, reply, okOps(resourceOps(r)));
    return reply.status(201).send(resourceRead(r, req));
  });
  const replaceResource = async (req: FastifyRequest, reply: FastifyReply) => {
    const r = { ...(req.body as Omit<ResourceBody, 'key'>), key: p(req).key };
    await forward(req, reply, okOps(resourceOps(r)));
    return resourceRead(r, req);
  };
  route('PUT', '/resources/:key', IdsKey, PermitResourceUpdate, 'Replace a resource type (Permit)', replaceResource);
  route('PATCH', '/resources/:key', IdsKey, PermitResourceUpdate, 'Update a resource type: actions, attributes and relations sent replace the stored ones (Permit)', async (req, reply) => {
    const key = p(req).key;
    const old = need('resource', key, 'resource') as { actions?: string[]; attributes?: Record<string, string>; relations?: Record<string, string>; name?: string };
    const b = req.body as Omit<ResourceBody, 'key'>;
    const r: ResourceBody = {
      key, name: b.name ?? old.name,
      actions: b.actions ?? Object.fromEntries((old.actions ?? []).map((a) => [a, {}])),
      attributes: b.attributes ?? (old.attributes ? Object.fromEntries(Object.entries(old.attributes).map(([k, t]) => [k, { type: t }])) : undefined),
      relations: b.relations ?? old.relations, roles: b.roles,
    };
    await forward(req, reply, okOps(resourceOps(r)));
    return resourceRead(r, req);
  });
  route('DELETE', '/resources/:key', IdsKey, undefined, 'Delete a resource type and its roles (Permit)', async (req, reply) => {
    const key = p(req).key;
    const roles = [...(d.decider.index.resourceRoles.get(key)?.keys() ?? [])].map((r) => remove('resource_role', resourceRoleKey(key, r)));
    await forward(req, reply, okOps([remove('resource', key), ...roles]));
    return reply.status(204).send();
  });

  // ---- resource roles and relations ---------------------------------------
  const resourceRoleRead = (type: string, key: string, r: ResourceRoleBody, req: FastifyRequest) =>
    ({ ...d.meta(req), id: `${type}#${key}`, key, resource: type, resource_id: type, name: r.name ?? key, permissions: r.permissions ?? [], extends: r.extends ?? [], granted_to: r.granted_to ?? null });
  route('POST', '/resources/:key/roles', IdsKey, PermitResourceRole, 'Create a role of a resource type (Permit)', async (req, reply) => {
    const type = p(req).key;
    const r = req.body as ResourceRoleBody;
    if (!r.key) throw new FactsyncError('invalid_request', 'body must have a key: the role name, e.g. "editor"');
    await forward(req, reply, okOps([upsert('resource_role', resourceRoleKey(type, r.key), resourceRoleValue(type, r))]));
    return reply.status(201).send(resourceRoleRead(type, r.key, r, req));
  });
  route('PATCH', '/resources/:key/roles/:role', IdsRole, PermitResourceRole, 'Update a role of a resource type (Permit)', async (req, reply) => {
    const { key: type, role } = p(req) as { key: string; role: string };
    const old = need('resource_role', resourceRoleKey(type, role), 'resource role');
    const value = { ...old, ...resourceRoleValue(type, { ...(req.body as ResourceRoleBody), permissions: (req.body as ResourceRoleBody).permissions ?? (old.permissions as string[]) }) };
    await forward(req, reply, okOps([upsert('resource_role', resourceRoleKey(type, role), value)]));
    return resourceRoleRead(type, role, req.body as ResourceRoleBody, req);
  });
  route('DELETE', '/resources/:key/roles/:role', IdsRole, undefined, 'Delete a role of a resource type (Permit)', async (req, reply) => {
    const { key: type, role } = p(req) as { key: string; role: string };
    await forward(req, reply, okOps([remove('resource_role', resourceRoleKey(type, role))]));
    return reply.status(204).send();
  });
  route('POST', '/resources/:key/relations', IdsKey, PermitRelation, 'Declare a relation of a resource type, e.g. parent → folder (Permit)', async (req, reply) => {
    const type = p(req).key;
    const rel = req.body as { key: string; name?: string | null; subject_resource: string };
    const old = need('resource', type, 'resource');
    const value = { ...old, relations: { ...(old.relations as Record<string, string> | undefined), [rel.key]: rel.subject_resource } };
    await forward(req, reply, okOps([upsert('resource', type, value)]));
    return reply.status(201).send({ ...d.meta(req), id: `${type}:${rel.key}`, key: rel.key, name: rel.name ?? rel.key, subject_resource: rel.subject_resource, object_resource: type });
  });

  // ---- tenant roles -------------------------------------------------------
  const roleRead = (key: string, v: Record<string, unknown>, req: FastifyRequest) =>
    ({ ...d.meta(req), id: key, key, name: (v.name as string | undefined) ?? key, description: null, permissions: v.permissions ?? [], extends: v.extends ?? [] });
  route('POST', '/roles', Ids, PermitRole, 'Create a tenant role (Permit)', async (req, reply) => {
    const r = req.body as RoleBody;
    const value = roleValue(r);
    await forward(req, reply, okOps([upsert('role', r.key, value)]));
    return reply.status(201).send(roleRead(r.key, value, req));
  });
  route('PATCH', '/roles/:key', IdsKey, PermitRoleUpdate, 'Update a tenant role (Permit)', async (req, reply) => {
    const key = p(req).key;
    const b = req.body as Partial<RoleBody>;
    const value = { ...need('role', key, 'role'), ...Object.fromEntries(Object.entries(roleValue(b)).filter(([k]) => b[k as keyof RoleBody] !== undefined && b[k as keyof RoleBody] !== null)) };
    await forward(req, reply, okOps([upsert('role', key, value)]));
    return roleRead(key, value, req);
  });
  route('DELETE', '/roles/:key', IdsKey, undefined, 'Delete a tenant role (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([remove('role', p(req).key)]));
    return reply.status(204).send();
  });
  const changePermissions = (add: boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
    const key = p(req).key;
    const old = need('role', key, 'role');
    const given = (req.body as { permissions: string[] }).permissions;
    const current = new Set((old.permissions as string[] | undefined) ?? []);
    for (const x of given) if (add) current.add(x); else current.delete(x);
    const value = { ...old, permissions: [...current] };
    await forward(req, reply, okOps([upsert('role', key, value)]));
    return roleRead(key, value, req);
  };
  route('POST', '/roles/:key/permissions', IdsKey, PermitPermissions, 'Grant permissions to a tenant role (Permit)', changePermissions(true));
  route('DELETE', '/roles/:key/permissions', IdsKey, PermitPermissions, 'Revoke permissions from a tenant role (Permit)', changePermissions(false));

  // ---- condition sets -----------------------------------------------------
  const setRead = (key: string, c: Partial<ConditionSetBody>, req: FastifyRequest) =>
    ({ ...d.meta(req), id: key, key, name: c.name ?? key, description: c.description ?? null, type: c.type, resource_id: c.resource_id ?? null, conditions: c.conditions ?? {} });
  route('POST', '/condition_sets', Ids, PermitConditionSet, 'Create a condition set, a user set or resource set (Permit)', async (req, reply) => {
    const c = req.body as ConditionSetBody;
    const value = conditionSetValue(c);
    if (!value.ok) throw new FactsyncError('invalid_request', value.error);
    await forward(req, reply, okOps([upsert('condition_set', c.key, value.value)]));
    return reply.status(201).send(setRead(c.key, c, req));
  });
  route('PATCH', '/condition_sets/:key', IdsKey, PermitConditionSetUpdate, 'Update a condition set (Permit)', async (req, reply) => {
    const key = p(req).key;
    const old = need('condition_set', key, 'condition set') as { kind: 'userset' | 'resourceset'; resource?: string; conditions: Record<string, unknown>; name?: string };
    const b = req.body as Partial<ConditionSetBody>;
    const merged = { name: b.name ?? old.name, type: b.type ?? old.kind, resource_id: b.resource_id ?? old.resource, conditions: b.conditions ?? old.conditions };
    const value = conditionSetValue(merged);
    if (!value.ok) throw new FactsyncError('invalid_request', value.error);
    await forward(req, reply, okOps([upsert('condition_set', key, value.value)]));
    return setRead(key, merged, req);
  });
  route('DELETE', '/condition_sets/:key', IdsKey, undefined, 'Delete a condition set (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([remove('condition_set', p(req).key)]));
    return reply.status(204).send();
  });
}
