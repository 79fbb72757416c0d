import { Type, type Static } from '@sinclair/typebox';
import { parseCondition } from './conditions.js';

/**
 * Policy as facts (docs/api.md, "Decisions on the agent"): the model travels on
 * the same versioned log as the data, so an agent decides with the policy and
 * the data of exactly the version it reports. Validation of these values is
 * registered with the other well-known types in facts.ts.
 */

const TYPE_RE = /^[a-z][a-z0-9_]{0,63}$/;
const NAME_RE = /^[^#@/:\s]{1,170}$/;
const Name = Type.String({ minLength: 1, maxLength: 170, description: 'no # @ / : or spaces' });
const Names = (max: number) => Type.Array(Name, { maxItems: max });
const KindName = Type.String({ minLength: 1, maxLength: 32 });

export const ResourceValue = Type.Object({
  actions: Names(1000),
  attributes: Type.Optional(Type.Record(Type.String(), KindName)),
  /** Relation name → the related resource type (e.g. parent → folder); informational, as `granted_to` names `via`. */
  relations: Type.Optional(Type.Record(Type.String(), Type.String({ minLength: 1, maxLength: 64 }))),
  name: Type.Optional(Type.String({ maxLength: 256 })),
}, { additionalProperties: false });

export const TenantRoleValue = Type.Object({
  permissions: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 10_000 }),
  /** Roles whose permissions this one also grants. */
  extends: Type.Optional(Names(100)),
  /** A role defined for one tenant only; it grants nothing elsewhere. */
  tenant: Type.Optional(Type.String({ minLength: 1 })),
  name: Type.Optional(Type.String({ maxLength: 256 })),
}, { additionalProperties: false });

export const GrantedTo = Type.Object({
  role: Name,
  on: Type.String({ pattern: TYPE_RE.source, description: 'the resource type of the related object' }),
  via: Name,
}, { additionalProperties: false });

export const ResourceRoleValue = Type.Object({
  permissions: Names(1000),
  extends: Type.Optional(Names(100)),
  granted_to: Type.Optional(Type.Array(GrantedTo, { maxItems: 100 })),
  name: Type.Optional(Type.String({ maxLength: 256 })),
}, { additionalProperties: false });

export const ResourceInstanceValue = Type.Object({
  tenant: Type.String({ minLength: 1, maxLength: 170 }),
  attributes: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
}, { additionalProperties: false });

export const ConditionSetValue = Type.Object({
  kind: Type.Union([Type.Literal('userset'), Type.Literal('resourceset')]),
  resource: Type.Optional(Type.String({ pattern: TYPE_RE.source })),
  conditions: Type.Record(Type.String(), Type.Unknown()),
  name: Type.Optional(Type.String({ maxLength: 256 })),
}, { additionalProperties: false });

export const ConditionSetRuleValue = Type.Object({
  user_set: Name,
  permission: Type.String({ minLength: 3, maxLength: 256 }),
  resource_set: Name,
}, { additionalProperties: false });

export type ResourceValue = Static<typeof ResourceValue>;
export type TenantRoleValue = Static<typeof TenantRoleValue>;
export type GrantedTo = Static<typeof GrantedTo>;
export type ResourceRoleValue = Static<typeof ResourceRoleValue>;
export type ResourceInstanceValue = Static<typeof ResourceInstanceValue>;
export type ConditionSetValue = Static<typeof ConditionSetValue>;
export type ConditionSetRuleValue = Static<typeof ConditionSetRuleValue>;

export const resourceRoleKey = (type: string, role: string): string => `${type}#${role}`;
export const conditionSetRuleKey = (v: ConditionSetRuleValue): string => `${v.user_set}/${v.permission}/${v.resource_set}`;

/** `document:read` → ['document', 'read']; undefined when not type:action. */
export function splitPermission(p: string): [string, string] | undefined {
  const i = p.indexOf(':');
  if (i <= 0 || i === p.length - 1) return undefined;
  const type = p.slice(0, i);
  return TYPE_RE.test(type) ? [type, p.slice(i + 1)] : undefined;
}

/** `document:1` → ['document', '1']; undefined when not type:id. */
export function splitInstance(key: string): [string, string] | undefined {
  const i = key.indexOf(':');
  if (i <= 0 || i === key.length - 1) return undefined;
  const type = key.slice(0, i);
  return TYPE_RE.test(type) ? [type, key.slice(i + 1)] : undefined;
}

// Checks beyond the JSON schema, each returning a sentence (or undefined when fine).

export function resourceProblem(key: string, v: ResourceValue): string | undefined {
  if (!TYPE_RE.test(key)) return `a resource's key is its type: a lower-case letter, then up to 63 of a-z 0-9 _ (got "${key}")`;
  const bad = v.actions.find((a) => !NAME_RE.test(a));
  return bad === undefined ? undefined : `action ${JSON.stringify(bad)} must not contain # @ / : or spaces`;
}

export function tenantRoleProblem(key: string, v: TenantRoleValue): string | undefined {
  if (!NAME_RE.test(key)) return `a role key must not contain # @ / : or spaces (got "${key}")`;
  const bad = v.permissions.find((p) => !splitPermission(p));
  if (bad !== undefined) return `permission ${JSON.stringify(bad)} is not type:action, e.g. document:read`;
  const badExt = (v.extends ?? []).find((r) => !NAME_RE.test(r));
  return badExt === undefined ? undefined : `extends: ${JSON.stringify(badExt)} is not a role key`;
}

export function resourceRoleProblem(key: string, v: ResourceRoleValue): string | undefined {
  const i = key.indexOf('#');
  if (i <= 0 || !TYPE_RE.test(key.slice(0, i)) || !NAME_RE.test(key.slice(i + 1))) {
    return `a resource role's key is type#role, e.g. document#editor (got "${key}")`;
  }
  const bad = [...v.permissions, ...(v.extends ?? [])].find((a) => !NAME_RE.test(a));
  return bad === undefined ? undefined : `${JSON.stringify(bad)}: actions and roles must not contain # @ / : or spaces (a resource role's permissions are actions of its type, e.g. "read")`;
}

export function resourceInstanceProblem(key: string): string | undefined {
  return splitInstance(key) ? undefined : `a resource instance's key is type:id, e.g. document:1 (got "${key}")`;
}

export function conditionSetProblem(key: string, v: ConditionSetValue): string | undefined {
  if (!NAME_RE.test(key)) return `a condition set key must not contain # @ / : or spaces (got "${key}")`;
  const c = parseCondition(v.conditions, 'value.conditions');
  return c.ok ? undefined : c.error;
}

export function conditionSetRuleProblem(v: ConditionSetRuleValue): string | undefined {
  return splitPermission(v.permission) ? undefined : `permission ${JSON.stringify(v.permission)} is not type:action, e.g. document:read`;
}
