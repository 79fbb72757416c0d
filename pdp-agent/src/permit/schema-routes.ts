import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static, type TObject, type TSchema, type TUnknown } from '@sinclair/typebox';
import type { TypedApp } from '@factsync/shared/http-app';
import {
  FactsyncError, ok, resourceRoleKey,
  type ConditionSetValue, type Op, type Result, type ResourceRoleValue, type ResourceValue, type TenantRoleValue,
} from '@factsync/shared';
import type { ForwardOps } from '../write-api.js';
import type { PermitDeps } from './deps.js';
import {
  PermitAction, PermitAttribute, PermitConditionSet, PermitConditionSetUpdate, PermitPermissions, PermitRelation, PermitResource,
  PermitResourceRole, PermitResourceUpdate, PermitRole, PermitRoleUpdate, conditionSetValue, resourceOps, resourceRoleValue, roleValue,
  type PermitConditionSet as ConditionSetBody, type PermitResource as ResourceBody,
} from './shapes.js';

const Name = Type.String({ minLength: 1, maxLength: 170 });
const Key = Type.Object({ key: Name });
const KeyRole = Type.Object({ key: Name, role: Name });
const KeyItem = Type.Object({ key: Name, item: Name });

/** A request typed by its route's params and body schemas. */
type Req<P extends TSchema, B extends TSchema> = FastifyRequest<{ Params: Static<P>; Body: Static<B> }>;
const okOps = (ops: Op[]): Result<Op[]> => ok(ops);
const upsert = (type: string, key: string, value: Record<string, unknown>): Op => ({ op: 'upsert', type, key, value });
const remove = (type: string, key: string): Op => ({ op: 'delete', type, key });

/**
 * `/v2/schema/:proj/:env/…` writes: the policy model the SDK defines
 * (resources with actions, attributes, roles and relations; tenant roles;
 * condition sets) becomes policy facts on the same log as the data.
 */
export function registerPermitSchemaRoutes(app: TypedApp, forward: ForwardOps, d: PermitDeps): void {
  const { views: v } = d;
  const route = <P extends TSchema = TObject<{}>, B extends TSchema = TUnknown>(method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string,
    params: P | undefined, body: B | undefined, summary: string, handler: (req: Req<P, B>, reply: FastifyReply) => Promise<unknown>) =>
    app.route({
      method, url, schema: { summary, tags: ['permit'], ...(params ? { params } : {}), ...(body ? { body } : {}) },
      // The type provider types req from a schema it knows; for the generic P and B of this helper, it is said once here.
      handler: (req, reply) => handler(req as unknown as Req<P, B>, reply),
    });
  const p = <T>(req: { params: T }) => req.params;
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
  const changeResource = <R extends Req<typeof Key, TSchema>>(change: (old: ResourceValue, req: R) => ResourceValue, render: (type: string, value: ResourceValue, req: R) => unknown, status = 200) =>
    async (req: R, reply: FastifyReply) => {
      const type = p(req).key;
      const value = change(need<ResourceValue>('resource', type, 'resource'), req);
      await forward(req, reply, okOps([upsert('resource', type, value)]));
      return reply.status(status).send(render(type, value, req));
    };

  // ---- resources ----------------------------------------------------------
  route('POST', '/resources', undefined, PermitResource, 'Create a resource type with its actions, attributes, roles and relations (Permit)', (req, reply) =>
    writeResource(req, reply, req.body, 201));
  route('PUT', '/resources/:key', Key, PermitResourceUpdate, 'Replace a resource type (Permit)', (req, reply) =>
    writeResource(req, reply, { ...req.body, key: p(req).key }));
  route('PATCH', '/resources/:key', Key, PermitResourceUpdate, 'Update a resource type: actions, attributes and relations sent replace the stored ones (Permit)', (req, reply) => {
    const key = p(req).key;
    const old = need<ResourceValue>('resource', key, 'resource');
    const b = req.body;
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
  const omit = <V>(record: Record<string, V> | undefined, key: string): Record<string, V> => {
    const { [key]: _gone, ...rest } = record ?? {};
    return rest;
  };
  route('POST', '/resources/:key/actions', Key, PermitAction, 'Add an action to a resource type (Permit)', changeResource(
    (old, req: Req<typeof Key, typeof PermitAction>) => ({ ...old, actions: [...new Set([...old.actions, req.body.key])] }),
    (type, _v, req) => v.action(type, req.body.key), 201));
  route('DELETE', '/resources/:key/actions/:item', KeyItem, undefined, 'Remove an action from a resource type (Permit)', changeResource(
    (old, req: Req<typeof KeyItem, TSchema>) => ({ ...old, actions: old.actions.filter((a) => a !== req.params.item) }), () => undefined, 204));
  route('POST', '/resources/:key/attributes', Key, PermitAttribute, 'Declare an attribute of a resource type (Permit)', changeResource(
    (old, req: Req<typeof Key, typeof PermitAttribute>) => {
      const a = req.body;
      return { ...old, attributes: { ...old.attributes, [a.key]: a.type } };
    },
    (type, _v, req) => v.attribute(type, req.body.key, req.body.type), 201));
  route('DELETE', '/resources/:key/attributes/:item', KeyItem, undefined, 'Remove an attribute of a resource type (Permit)', changeResource(
    (old, req: Req<typeof KeyItem, TSchema>) => ({ ...old, attributes: omit(old.attributes, req.params.item) }), () => undefined, 204));
  route('POST', '/resources/:key/relations', Key, PermitRelation, 'Declare a relation of a resource type, e.g. parent → folder (Permit)', changeResource(
    (old, req: Req<typeof Key, typeof PermitRelation>) => {
      const rel = req.body;
      return { ...old, relations: { ...old.relations, [rel.key]: rel.subject_resource } };
    },
    (type, _v, req) => v.relation(type, req.body.key, req.body.subject_resource), 201));
  route('DELETE', '/resources/:key/relations/:item', KeyItem, undefined, 'Remove a relation of a resource type (Permit)', changeResource(
    (old, req: Req<typeof KeyItem, TSchema>) => ({ ...old, relations: omit(old.relations, req.params.item) }), () => undefined, 204));

  // ---- resource roles -----------------------------------------------------
  route('POST', '/resources/:key/roles', Key, PermitResourceRole, 'Create a role of a resource type (Permit)', async (req, reply) => {
    const type = p(req).key;
    const r = req.body;
    if (!r.key) throw new FactsyncError('invalid_request', 'body must have a key: the role name, e.g. "editor"');
    const value = resourceRoleValue(type, r) as ResourceRoleValue;
    await forward(req, reply, okOps([upsert('resource_role', resourceRoleKey(type, r.key), value)]));
    return reply.status(201).send(v.resourceRole(type, r.key, value));
  });
  const changeResourceRole = <R extends Req<typeof KeyRole, TSchema>>(change: (old: ResourceRoleValue, req: R) => ResourceRoleValue) => async (req: R, reply: FastifyReply) => {
    const { key: type, role } = req.params;
    const value = change(need<ResourceRoleValue>('resource_role', resourceRoleKey(type, role), 'resource role'), req);
    await forward(req, reply, okOps([upsert('resource_role', resourceRoleKey(type, role), value)]));
    return v.resourceRole(type, role, value);
  };
  route('PATCH', '/resources/:key/roles/:role', KeyRole, PermitResourceRole, 'Update a role of a resource type (Permit)', changeResourceRole((old, req: Req<typeof KeyRole, typeof PermitResourceRole>) => {
    const b = req.body;
    return { ...old, ...resourceRoleValue(p(req).key, { ...b, permissions: b.permissions ?? old.permissions }) } as ResourceRoleValue;
  }));
  const rolePermissions = (add: boolean) => changeResourceRole((old, req: Req<typeof KeyRole, typeof PermitPermissions>) => {
    const type = req.params.key;
    const given = req.body.permissions.map((x) => (x.startsWith(`${type}:`) ? x.slice(type.length + 1) : x));
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
    const r = req.body;
    const value = roleValue(r) as TenantRoleValue;
    await forward(req, reply, okOps([upsert('role', r.key, value)]));
    return reply.status(201).send(v.role(r.key, value));
  });
  const changeRole = <R extends Req<typeof Key, TSchema>>(change: (old: TenantRoleValue, req: R) => TenantRoleValue) => async (req: R, reply: FastifyReply) => {
    const key = req.params.key;
    const value = change(need<TenantRoleValue>('role', key, 'role'), req);
    await forward(req, reply, okOps([upsert('role', key, value)]));
    return v.role(key, value);
  };
  route('PATCH', '/roles/:key', Key, PermitRoleUpdate, 'Update a tenant role (Permit)', changeRole((old, req: Req<typeof Key, typeof PermitRoleUpdate>) => {
    const b = req.body;
    const sent = b as Record<string, unknown>;
    const given = Object.entries(roleValue(b)).filter(([k]) => sent[k] !== undefined && sent[k] !== null);
    return { ...old, ...Object.fromEntries(given) } as TenantRoleValue;
  }));
  route('DELETE', '/roles/:key', Key, undefined, 'Delete a tenant role (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([remove('role', p(req).key)]));
    return reply.status(204).send();
  });
  const permissions = (add: boolean) => changeRole((old, req: Req<typeof Key, typeof PermitPermissions>) => {
    const next = new Set(old.permissions);
    for (const x of req.body.permissions) if (add) next.add(x); else next.delete(x);
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
    writeSet(req, reply, req.body.key, req.body, 201));
  route('PATCH', '/condition_sets/:key', Key, PermitConditionSetUpdate, 'Update a condition set (Permit)', (req, reply) => {
    const key = p(req).key;
    const old = need<ConditionSetValue>('condition_set', key, 'condition set');
    const b = req.body;
    return writeSet(req, reply, key, { name: b.name ?? old.name, type: b.type ?? old.kind, resource_id: b.resource_id ?? old.resource, conditions: b.conditions ?? old.conditions }, 200);
  });
  route('DELETE', '/condition_sets/:key', Key, undefined, 'Delete a condition set (Permit)', async (req, reply) => {
    await forward(req, reply, okOps([remove('condition_set', p(req).key)]));
    return reply.status(204).send();
  });
}
