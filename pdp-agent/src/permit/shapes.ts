import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  DEFAULT_TENANT, FactKey, conditionSetRuleKey, relationshipKey, resourceRoleKey, roleAssignmentKey, splitInstance,
  type Op, type ResourceRoleValue, type ResourceValue, type Result, err, ok,
} from '@factsync/shared';

/**
 * Permit's request bodies (as the `permitio` SDK sends them) and how each
 * becomes factsync ops. Pure functions: no I/O, no decisions, no waiting; the
 * routes hand the ops to the agent's one write path. Unknown fields are
 * accepted and ignored, so a newer SDK sending more does not break.
 */

const open = { additionalProperties: true };
const Key = FactKey;
const Name = Type.String({ minLength: 1, maxLength: 170 });
const Attrs = Type.Record(Type.String(), Type.Unknown());
/** Permit's SDK sends null for what it leaves unset. */
const Opt = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

export const RoleAssignmentRef = Type.Object({ role: Name, tenant: Opt(Name), resource_instance: Opt(Name) }, open);
export const PermitUser = Type.Object({
  key: Key,
  email: Opt(Type.String({ maxLength: 320 })),
  first_name: Opt(Type.String({ maxLength: 256 })),
  last_name: Opt(Type.String({ maxLength: 256 })),
  attributes: Opt(Attrs),
  role_assignments: Opt(Type.Array(RoleAssignmentRef, { maxItems: 1000 })),
}, open);
export const PermitUserUpdate = Type.Omit(PermitUser, ['key']);
export const PermitTenant = Type.Object({ key: Key, name: Opt(Type.String({ maxLength: 256 })), description: Opt(Type.String()), attributes: Opt(Attrs) }, open);
export const PermitTenantUpdate = Type.Omit(PermitTenant, ['key']);
export const PermitRoleAssignment = Type.Object({ user: Key, role: Name, tenant: Opt(Name), resource_instance: Opt(Name) }, open);
export const PermitUserRole = Type.Omit(PermitRoleAssignment, ['user']);
export const PermitTuple = Type.Object({ subject: Name, relation: Name, object: Name, tenant: Opt(Name) }, open);
export const PermitResourceInstance = Type.Object({ key: Key, resource: Name, tenant: Opt(Name), attributes: Opt(Attrs) }, open);
export const PermitResourceInstanceUpdate = Type.Object({ tenant: Opt(Name), attributes: Opt(Attrs) }, open);
export const PermitSetRule = Type.Object({ user_set: Name, permission: Name, resource_set: Name }, open);

export const UsersWithRole = Type.Object({ role: Name, on_resource: Name, linked_by_relation: Name }, open);
export const PermitResourceRole = Type.Object({
  key: Type.Optional(Name),
  name: Opt(Type.String()),
  description: Opt(Type.String()),
  permissions: Opt(Type.Array(Name, { maxItems: 1000 })),
  extends: Opt(Type.Array(Name, { maxItems: 100 })),
  granted_to: Type.Optional(Type.Union([Type.Object({ users_with_role: Opt(Type.Array(UsersWithRole, { maxItems: 100 })) }, open), Type.Null()])),
}, open);
const Action = Type.Object({ name: Opt(Type.String()), description: Opt(Type.String()) }, open);
const AttributeDef = Type.Object({ type: Type.String({ minLength: 1, maxLength: 32 }), description: Opt(Type.String()) }, open);
const Relation = Type.Union([Name, Type.Object({ resource: Name }, open)], { description: 'the related resource type' });
export const PermitResource = Type.Object({
  key: Name,
  name: Opt(Type.String()),
  description: Opt(Type.String()),
  actions: Type.Optional(Type.Record(Type.String(), Action)),
  attributes: Opt(Type.Record(Type.String(), AttributeDef)),
  roles: Opt(Type.Record(Type.String(), PermitResourceRole)),
  relations: Opt(Type.Record(Type.String(), Relation)),
}, open);
export const PermitResourceUpdate = Type.Omit(PermitResource, ['key']);
export const PermitAction = Type.Object({ key: Name, name: Opt(Type.String()), description: Opt(Type.String()) }, open);
export const PermitAttribute = Type.Object({ key: Name, type: Type.String({ minLength: 1, maxLength: 32 }), description: Opt(Type.String()) }, open);
export const PermitRelation = Type.Object({ key: Name, name: Opt(Type.String()), subject_resource: Name }, open);
export const PermitRole = Type.Object({
  key: Name, name: Opt(Type.String()), description: Opt(Type.String()),
  permissions: Opt(Type.Array(Name, { maxItems: 10_000 })), extends: Opt(Type.Array(Name, { maxItems: 100 })),
}, open);
export const PermitRoleUpdate = Type.Omit(PermitRole, ['key']);
export const PermitPermissions = Type.Object({ permissions: Type.Array(Name, { maxItems: 10_000 }) }, open);
export const PermitConditionSet = Type.Object({
  key: Name, name: Opt(Type.String()), description: Opt(Type.String()),
  type: Type.Optional(Type.Union([Type.Literal('userset'), Type.Literal('resourceset')])),
  resource_id: Opt(Name),
  conditions: Opt(Attrs),
}, open);
export const PermitConditionSetUpdate = Type.Omit(PermitConditionSet, ['key']);

export type PermitUser = Static<typeof PermitUser>;
export type PermitRoleAssignment = Static<typeof PermitRoleAssignment>;
export type PermitTenant = Static<typeof PermitTenant>;
export type PermitTuple = Static<typeof PermitTuple>;
export type PermitResource = Static<typeof PermitResource>;
export type PermitResourceRole = Static<typeof PermitResourceRole>;
export type PermitRole = Static<typeof PermitRole>;
export type PermitConditionSet = Static<typeof PermitConditionSet>;

const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));
const up = (type: string, key: string, value: Record<string, unknown>): Op => ({ op: 'upsert', type, key, value });
const del = (type: string, key: string): Op => ({ op: 'delete', type, key });

/** A user's fact value: the user fields Permit sends that factsync's user type knows. */
export const userValue = (u: Partial<PermitUser>): Record<string, unknown> =>
  defined({ email: u.email, first_name: u.first_name, last_name: u.last_name, attributes: u.attributes });

/** A tenant's fact value: the tenant fields factsync's tenant type knows. */
export const tenantValue = (t: Partial<PermitTenant>): Record<string, unknown> => defined({ name: t.name, attributes: t.attributes });

/**
 * A role assignment: tenant-wide (`{user, role, tenant}`) or on an instance
 * (`{user, role, resource_instance: "folder:f1"}`), which is the relationship
 * `folder:f1#role@user:key` (tenant-wide roles and resource roles are decided
 * from those two facts, see docs/api.md, "Decisions on the agent").
 */
export function assignmentOp(a: PermitRoleAssignment, op: 'upsert' | 'delete'): Result<Op> {
  if (a.resource_instance) {
    if (!splitInstance(a.resource_instance)) return err(`resource_instance ${JSON.stringify(a.resource_instance)} is not type:key, e.g. document:1`);
    const v = { object: a.resource_instance, relation: a.role, subject: `user:${a.user}` };
    return ok(op === 'upsert' ? up('relationship', relationshipKey(v), v) : del('relationship', relationshipKey(v)));
  }
  const v = { user: a.user, role: a.role, tenant: a.tenant ?? DEFAULT_TENANT };
  return ok(op === 'upsert' ? up('role_assignment', roleAssignmentKey(v), v) : del('role_assignment', roleAssignmentKey(v)));
}

export function allOk<T>(rs: Result<T>[]): Result<T[]> {
  const out: T[] = [];
  for (const r of rs) {
    if (!r.ok) return r;
    out.push(r.value);
  }
  return ok(out);
}

/** `{subject: "folder:f1", relation: "parent", object: "file:d1"}`: folder:f1 is the parent of file:d1. */
/** A Permit tuple as a relationship fact; with `tenant`, it counts only in that tenant (as in Permit). */
export function tupleOp(t: Pick<PermitTuple, 'subject' | 'relation' | 'object'> & { tenant?: string | null | undefined }, op: 'upsert' | 'delete'): Op {
  const v = { object: t.object, relation: t.relation, subject: t.subject };
  return op === 'upsert' ? up('relationship', relationshipKey(v), t.tenant ? { ...v, tenant: t.tenant } : v) : del('relationship', relationshipKey(v));
}

export const instanceKey = (resource: string, key: string) => (key.startsWith(`${resource}:`) ? key : `${resource}:${key}`);

export function resourceRoleValue(type: string, r: PermitResourceRole): Record<string, unknown> {
  return defined({
    name: r.name ?? undefined,
    permissions: (r.permissions ?? []).map((p) => (p.startsWith(`${type}:`) ? p.slice(type.length + 1) : p)),
    extends: r.extends ?? undefined,
    granted_to: r.granted_to?.users_with_role?.map((g) => ({ role: g.role, on: g.on_resource, via: g.linked_by_relation })),
  });
}

/** A resource with its roles: the `resource` fact and one `resource_role` per role, in one version. */
export function resourceOps(r: PermitResource): { value: ResourceValue; roles: Map<string, ResourceRoleValue>; ops: Op[] } {
  const relations = r.relations
    ? Object.fromEntries(Object.entries(r.relations).map(([k, v]) => [k, typeof v === 'string' ? v : v.resource]))
    : undefined;
  const value = defined({
    name: r.name ?? undefined,
    actions: Object.keys(r.actions ?? {}),
    attributes: r.attributes ? Object.fromEntries(Object.entries(r.attributes).map(([k, a]) => [k, a.type])) : undefined,
    relations,
  }) as ResourceValue;
  const roles = new Map(Object.entries(r.roles ?? {}).map(([role, def]) => [role, resourceRoleValue(r.key, def) as ResourceRoleValue]));
  return { value, roles, ops: [up('resource', r.key, value), ...[...roles].map(([role, v]) => up('resource_role', resourceRoleKey(r.key, role), v))] };
}

export const roleValue = (r: Partial<PermitRole>) => defined({ name: r.name ?? undefined, permissions: r.permissions ?? [], extends: r.extends ?? undefined });

export function conditionSetValue(c: Partial<PermitConditionSet>): Result<Record<string, unknown>> {
  if (!c.type) return err('type is required: "userset" or "resourceset"');
  return ok(defined({ name: c.name ?? undefined, kind: c.type, resource: c.resource_id ?? undefined, conditions: c.conditions ?? { allOf: [] } }));
}

export const setRuleOp = (r: Static<typeof PermitSetRule>, op: 'upsert' | 'delete'): Op => {
  const v = { user_set: r.user_set, permission: r.permission, resource_set: r.resource_set };
  return op === 'upsert' ? up('condition_set_rule', conditionSetRuleKey(v), v) : del('condition_set_rule', conditionSetRuleKey(v));
};
