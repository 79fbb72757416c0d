import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import {
  FactsyncError, ok, resourceRoleKey,
  type ConditionSetValue, type Op, type Result, type ResourceRoleValue, type ResourceValue, type TenantRoleValue,
} from '@factsync/shared';
import type { ForwardOps } from '../write-api.js';
import type { PermitDeps } from './deps.js';
import {
  PermitAction, PermitAttribute, PermitConditionSet, PermitConditionSetUpdate, PermitPermissions, PermitRelation, PermitResource,
  PermitResourceRole, PermitResourceUpdate, PermitRole, PermitRoleUpdate, conditionSetValue, resourceOps, resourceRoleValue, roleValue,
  type PermitConditionSet as ConditionSetBody, type PermitResource as ResourceBody, type PermitResourceRole as ResourceRoleBody, type PermitRole as RoleBody,
} from './shapes.js';

const Name = Type.String({ minLength: 1, maxLength: 170 });
const Key = Type.Object({ key: Name });
const KeyRole = Type.Object({ key: Name, role: Name });
const KeyItem = Type.Object({ key: Name, item: Name });

type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
const okOps = (ops: Op[]): Result<Op[]> => ok(ops);
const upsert = (type: string, key: string, value: Record<string, unknown>): Op => ({ op: 'upsert', type, key, value });
const remove = (type: string, key: string): Op => ({ op: 'delete', type, key });

/**
 * `/v2/schema/:proj/:env/…` writes: the policy model the SDK defines
 * (resources with actions, attributes, roles and relations; tenant roles;
 * condition sets) becomes policy facts on the same log as the data.
 */
export function registerPermitSchemaRoutes(app: FastifyInstance, forward: ForwardOps, d: PermitDeps): void {
  const { views: v } = d;
  const route = (method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, params: TSchema | undefined, body: TSchema | undefined, summary: string, handler: Handler) =>
    app.route({ method, url, schema: { summary, tags: ['permit'], ...(params ? { params } : {}), ...(body ? { body } : {}) }, handler });
  const p = (req: FastifyRequest) => req.params as { key: string; role: string; item: string };
  const need = <T>(type: string, key: string, what: string): T => {
    const f = d.store.get(type, key);
    if (!f) throw new FactsyncError('not_found', `no ${what} "${key}" on this agent`);
    return f.value as T;
  };
  /** Writes a resource's ops and answers the resource as they define it. */
  const writeResource = async (req: FastifyRequest, reply: FastifyReply, r: ResourceBody, status = 200) => {
    const { value, roles, ops } = resourceOps(r);
    await forward(req, reply, okOps(ops));
    return reply.status(status).send(v.resource(r.key, value, r.roles ? roles : undefined));
  };
  /** Changes the stored resource fact and answers what `render` makes of the new value. */
  const changeResource = (change: (old: ResourceValue, req: FastifyRequest) => ResourceValue, render: (type: string, value: ResourceValue, req: FastifyRequest) => unknown, status = 200) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      const type = p(req).key;
      const value = change(need<ResourceValue>('resource', type, 'resource'), req);
      await forward(req, reply, okOps([upsert('resource', type, value)]));
      return reply.status(status).send(render(type, value, req));
    };

  // ---- resources ----------------------------------------------------------
  route('POST', '/resources', undefined, PermitResource, 'Create a resource type with its actions, attributes, roles and relations (Permit)', (req, reply) =>
    writeResource(req, reply, req.body as ResourceBody, 201));
  route('PUT', '/resources/:key', Key, PermitResourceUpdate, 'Replace a resource type (Permit)', (req, reply) =>
    writeResource(req, reply, { ...(req.body as Omit<ResourceBody, 'key'>), key: p(req).key }));
  route('PATCH', '/resources/:key', Key, PermitResourceUpdate, 'Update a resource type: actions, attributes and relations sent replace the stored ones (Permit)', (req, reply) => {
    const key = p(req).key;
    const old = need<ResourceValue>('resource', key, 'resource');
    const b = req.body as Omit<ResourceBody, 'key'>;
    return writeResource(req, reply, {
      key, name: b.name ?? old.name,
      actions: b.actions ?? Object.fromEntries(old.actions.map((a) => [a, {}])),
      attributes: b.attributes ?? (old.attributes ? Object.fromEntries(Object.entries(old.attributes).map(([k, t]) => [k, { type: t }])) : undefined),
      relations: b.relations ?? old.relations, roles: b.roles,
    });
  });
  route('DELETE', '/resources/:key', Key, undefined, 'Delete a resource type and its roles (Permit)', async (req, reply) => {
    const key = p(req).key;
    const roles = [...(d.decider.index.resourceRoles.get(key)?.keys() ?? [])].map((r) => remove('resource_role', resourceRoleKey(key, r)));
    await forward(req, reply, okOps([remove('resource', key), ...roles]));
    return reply.status(204).send();
  });

  // ---- actions, attributes and relations of a resource ----------------------
  route('POST', '/resources/:key/actions', Key, PermitAction, 'Add an action to a resource type (Permit)', changeResource(
    (old, req) => ({ ...old, actions: [...new Set([...old.actions, (req.body as { key: string }).key])] }),
    (type, _v, req) => v.action(type, (req.body as { key: string }).key), 201));
  route('DELETE', '/resources/:key/actions/:item', KeyItem, undefined, 'Remove an action from a resource type (Permit)', changeResource(
    (old, req) => ({ ...old, actions: old.actions.filter((a) => a !== p(req).item) }), () => undefined, 204));
  route('POST', '/resources/:key/attributes', Key, PermitAttribute, 'Declare an attribute of a resource type (Permit)', changeResource(
    (old, req) => {
      const a = req.body as { key: string; type: string };
      return { ...old, attributes: { ...old.attributes, [a.key]: a.type } };
    },
    (type, _v, req) => v.attribute(type, (req.body as { key: string }).key, (req.body as { type: string }).type), 201));
  route('DELETE', '/resources/:key/attributes/:item', KeyItem, undefined, 'Remove an attribute of a resource type (Permit)', changeResource(
    (old, req) => ({ ...old, attributes: Object.fromEntries(Object.entries(old.attributes ?? {}).filter(([k]) => k !== p(req).item)) }), () => undefined, 204));
  route('POST', '/resources/:key/relations', Key, PermitRelation, 'Declare a relation of a resource type, e.g. parent → folder (Permit)', changeResource(
    (old, req) => {
      const rel = req.body as { key: string; subject_resource: string };
      return { ...old, relations: { ...old.relations, [rel.key]: rel.subject_resource } };
    },
    (type, _v, req) => v.relation(type, (req.body as { key: string }).key, (req.body as { subject_resource: string }).subject_resource), 201));
  route('DELETE', '/resources/:key/relations/:item', KeyItem, undefined, 'Remove a relation of a resource type (Permit)', changeResource(
    (old, req) => ({ ...old, relations: Object.fromEntries(Object.entries(old.relations ?? {}).filter(([k]) => k !== p(req).item)) }), () => undefined, 204));

  // ---- resource roles -----------------------------------------------------
  route('POST', '/resources/:key/roles', Key, PermitResourceRole, 'Create a role of a resource type (Permit)', async (req, reply) => {
    const type = p(req).key;
    const r = req.body as ResourceRoleBody;
    if (!r.key) throw new FactsyncError('invalid_request', 'body must have a key: the role name, e.g. "editor"');
    const value = resourceRoleValue(type, r) as ResourceRoleValue;
    await forward(req, reply, okOps([upsert('resource_role', resourceRoleKey(type, r.key), value)]));
    return reply.status(201).send(v.resourceRole(type, r.key, value));
  });
  const changeResourceRole = (change: (old: ResourceRoleValue, req: FastifyRequest) => ResourceRoleValue) => async (req: FastifyRequest, reply: FastifyReply) => {
    const { key: type, role } = p(req);
    const value = change(need<ResourceRoleValue>('resource_role', resourceRoleKey(type, role), 'resource role'), req);
    await forward(req, reply, okOps([upsert('resource_role', resourceRoleKey(type, role), value)]));
    return v.resourceRole(type, role, value);
  };
  route('PATCH', '/resources/:key/roles/:role', KeyRole, PermitResourceRole, 'Update a role of a resource type (Permit)', changeResourceRole((old, req) => {
    const b = req.body as ResourceRoleBody;
    return { ...old, ...resourceRoleValue(p(req).key, { ...b, permissions: b.permissions ?? old.permissions }) } as ResourceRoleValue;
  }));
  const rolePermissions = (add: boolean) => changeResourceRole((old, req) => {
    const type = p(req).key;
    const given = (req.body as { permissions: string[] }).permissions.map((x) => (x.startsWith(`${type}:`) ? x.slice(type.length + 1) : x));
    const next = new Set(old.permissions);
    for (const x of given) if (add) next.add(x); else next.delete(x);
    return { ...old, permissions: [...next] };
  });
  route('POST', '/resources/:key/roles/:role/permissions', KeyRole, PermitPermissions, 'Grant permissions to a resource role (Permit)', rolePermissions(true));
  route('DELETE', '/resources/:key/roles/:role/permissions', KeyRole, PermitPermissions, 'Revoke permissions from a resource role (Permit)', rolePermissions(false));
  route('DELETE', '/resources/:key/roles/:role', KeyRole, undefined, 'Delete a role of a resource type (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([remove('resource_role', resourceRoleKey(p(req).key, p(req).role))]));
    return reply.status(204).send();
  });

  // ---- tenant roles -------------------------------------------------------
  route('POST', '/roles', undefined, PermitRole, 'Create a tenant role (Permit)', async (req, reply) => {
    const r = req.body as RoleBody;
    const value = roleValue(r) as TenantRoleValue;
    await forward(req, reply, okOps([upsert('role', r.key, value)]));
    return reply.status(201).send(v.role(r.key, value));
  });
  const changeRole = (change: (old: TenantRoleValue, req: FastifyRequest) => TenantRoleValue) => async (req: FastifyRequest, reply: FastifyReply) => {
    const key = p(req).key;
    const value = change(need<TenantRoleValue>('role', key, 'role'), req);
    await forward(req, reply, okOps([upsert('role', key, value)]));
    return v.role(key, value);
  };
  route('PATCH', '/roles/:key', Key, PermitRoleUpdate, 'Update a tenant role (Permit)', changeRole((old, req) => {
    const b = req.body as Partial<RoleBody>;
    const given = Object.entries(roleValue(b)).filter(([k]) => b[k as keyof RoleBody] !== undefined && b[k as keyof RoleBody] !== null);
    return { ...old, ...Object.fromEntries(given) } as TenantRoleValue;
  }));
  route('DELETE', '/roles/:key', Key, undefined, 'Delete a tenant role (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([remove('role', p(req).key)]));
    return reply.status(204).send();
  });
  const permissions = (add: boolean) => changeRole((old, req) => {
    const next = new Set(old.permissions);
    for (const x of (req.body as { permissions: string[] }).permissions) if (add) next.add(x); else next.delete(x);
    return { ...old, permissions: [...next] };
  });
  route('POST', '/roles/:key/permissions', Key, PermitPermissions, 'Grant permissions to a tenant role (Permit)', permissions(true));
  route('DELETE', '/roles/:key/permissions', Key, PermitPermissions, 'Revoke permissions from a tenant role (Permit)', permissions(false));

  // ---- condition sets -----------------------------------------------------
  const writeSet = async (req: FastifyRequest, reply: FastifyReply, key: string, c: Partial<ConditionSetBody>, status: number) => {
    const value = conditionSetValue(c);
    if (!value.ok) throw new FactsyncError('invalid_request', value.error);
    await forward(req, reply, okOps([upsert('condition_set', key, value.value)]));
    return reply.status(status).send(v.conditionSet(key, value.value as ConditionSetValue));
  };
  route('POST', '/condition_sets', undefined, PermitConditionSet, 'Create a condition set, a user set or resource set (Permit)', (req, reply) =>
    writeSet(req, reply, (req.body as ConditionSetBody).key, req.body as ConditionSetBody, 201));
  route('PATCH', '/condition_sets/:key', Key, PermitConditionSetUpdate, 'Update a condition set (Permit)', (req, reply) => {
    const key = p(req).key;
    const old = need<ConditionSetValue>('condition_set', key, 'condition set');
    const b = req.body as Partial<ConditionSetBody>;
    return writeSet(req, reply, key, { name: b.name ?? old.name, type: b.type ?? old.kind, resource_id: b.resource_id ?? old.resource, conditions: b.conditions ?? old.conditions }, 200);
  });
  route('DELETE', '/condition_sets/:key', Key, undefined, 'Delete a condition set (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([remove('condition_set', p(req).key)]));
    return reply.status(204).send();
  });
}
