import {
  DEFAULT_TENANT, resourceRoleKey, splitInstance,
  type ConditionSetValue, type ResourceRoleValue, type ResourceValue, type TenantRoleValue,
} from '@factsync/shared';
import type { PolicyIndex } from '../decide/policy-index.js';
import type { LocalStore } from '../local-store.js';
import { idsFor, scopeOf, type Scope } from './ids.js';

type Value = Record<string, unknown>;
export interface AssignmentRef { user: string; role: string; tenant?: string | null; resource_instance?: string | null }
export interface TupleRef { subject: string; relation: string; object: string; tenant?: string }

/** Permit's attribute types; factsync's attribute kinds map onto them. */
const PERMIT_ATTRIBUTE_TYPES = new Set(['bool', 'number', 'string', 'time', 'array', 'json', 'object', 'object_array']);
function permitAttributeType(kind: string): string {
  if (PERMIT_ATTRIBUTE_TYPES.has(kind)) return kind;
  if (kind === 'boolean') return 'bool';
  if (kind === 'integer' || kind === 'double') return 'number';
  if (kind.endsWith('_array')) return 'array';
  return 'json';
}

/**
 * Every object the Permit SDKs read, rendered in one place per kind with every
 * field their `*Read` models require (ids derived by `ids.ts`, `*_id` fields,
 * timestamps). factsync keeps no per-fact timestamps: `created_at`,
 * `updated_at` and `last_action_at` are the time of the version the answer was
 * read at (the agent's latest applied change).
 */
export interface PermitViews {
  scope: Scope;
  user(key: string, value: Value): Value;
  tenant(key: string, value: Value): Value;
  assignment(a: AssignmentRef): Value;
  tuple(t: TupleRef): Value;
  instance(key: string, value: Value): Value;
  /** `roles`: the resource's roles as a write just set them (else as this agent holds them). */
  resource(key: string, value: ResourceValue, roles?: ReadonlyMap<string, ResourceRoleValue>): Value;
  role(key: string, value: TenantRoleValue): Value;
  resourceRole(type: string, role: string, value: ResourceRoleValue): Value;
  action(type: string, action: string): Value;
  attribute(type: string, name: string, kind: string): Value;
  relation(type: string, name: string, subjectType: string): Value;
  conditionSet(key: string, value: ConditionSetValue): Value;
  setRule(r: { user_set: string; permission: string; resource_set: string }): Value;
  /** The tenant a relationship belongs to: its object's instance tenant, else `default`. */
  tupleTenant(object: string): string;
}

export function createPermitViews(env: string, store: LocalStore, index: PolicyIndex): PermitViews {
  const scope = scopeOf(env);
  const id = idsFor(env);
  const loaded = new Date().toISOString();
  const base = () => {
    const at = store.lastTs ?? loaded;
    return { ...scope, created_at: at, updated_at: at };
  };
  const tupleTenant = (object: string) => index.instances.get(object)?.tenant ?? DEFAULT_TENANT;
  const instanceRoles = (user: string) => {
    const out: { resource_instance: string; resource: string; role: string; tenant: string }[] = [];
    for (const node of index.reverse.values(`user:${user}`)) {
      const h = node.lastIndexOf('#');
      const object = node.slice(0, h);
      const tk = splitInstance(object);
      if (tk && index.resourceRoles.get(tk[0])?.has(node.slice(h + 1))) {
        out.push({ resource_instance: tk[1], resource: tk[0], role: node.slice(h + 1), tenant: tupleTenant(object) });
      }
    }
    return out;
  };

  const resourceRole = (type: string, role: string, v: ResourceRoleValue): Value => ({
    ...base(), id: id('resource_role', resourceRoleKey(type, role)), key: role, name: v.name ?? role, description: null,
    resource: type, resource_id: id('resource', type), permissions: v.permissions, extends: v.extends ?? [], attributes: {},
    granted_to: v.granted_to?.length ? {
      id: id('derived_role', resourceRoleKey(type, role)),
      users_with_role: v.granted_to.map((g) => ({
        role: g.role, on_resource: g.on, linked_by_relation: g.via,
        role_id: id('resource_role', resourceRoleKey(g.on, g.role)), resource_id: id('resource', g.on), relation_id: id('relation', `${type}:${g.via}`),
      })),
    } : null,
  });
  const action = (type: string, a: string): Value => ({
    ...base(), id: id('action', `${type}:${a}`), key: a, name: a, description: null, permission_name: `${type}:${a}`, resource_id: id('resource', type), attributes: {},
  });
  const attribute = (type: string, name: string, kind: string): Value => ({
    ...base(), id: id('attribute', `${type}:${name}`), key: name, type: permitAttributeType(kind), description: null,
    resource_id: id('resource', type), resource_key: type, built_in: false,
  });
  const relation = (type: string, name: string, subjectType: string): Value => ({
    ...base(), id: id('relation', `${type}:${name}`), key: name, name, description: null, subject_resource: subjectType,
    subject_resource_id: id('resource', subjectType), object_resource: type, object_resource_id: id('resource', type),
  });

  return {
    scope,
    tupleTenant,
    user(key, v) {
      const byTenant = index.assignments.get(key);
      const instance = instanceRoles(key);
      const tenants = new Set([...(byTenant?.keys() ?? []), ...instance.map((r) => r.tenant)]);
      return {
        ...base(), id: id('user', key), key,
        email: v.email ?? null, first_name: v.first_name ?? null, last_name: v.last_name ?? null, attributes: v.attributes ?? {},
        roles: [...(byTenant ?? [])].flatMap(([tenant, roles]) => [...roles].map((role) => ({ role, tenant }))),
        associated_tenants: [...tenants].map((tenant) => ({
          tenant, roles: [...(byTenant?.get(tenant) ?? [])], status: 'active',
          resource_instance_roles: instance.filter((r) => r.tenant === tenant).map(({ tenant: _, ...r }) => r),
        })),
      };
    },
    tenant: (key, v) => {
      const b = base();
      return { ...b, last_action_at: b.updated_at, id: id('tenant', key), key, name: (v.name as string | undefined) ?? key, description: null, attributes: v.attributes ?? {} };
    },
    assignment(a) {
      const tenant = a.tenant ?? (a.resource_instance ? tupleTenant(a.resource_instance) : DEFAULT_TENANT);
      const base0 = { ...base(), user: a.user, role: a.role, tenant, user_id: id('user', a.user), tenant_id: id('tenant', tenant) };
      if (a.resource_instance) {
        const type = splitInstance(a.resource_instance)?.[0] ?? '';
        return {
          ...base0, id: id('relationship', `${a.resource_instance}#${a.role}@user:${a.user}`), role_id: id('resource_role', resourceRoleKey(type, a.role)),
          resource_instance: a.resource_instance, resource_instance_id: id('resource_instance', a.resource_instance),
        };
      }
      return { ...base0, id: id('role_assignment', `${a.user}/${a.role}/${tenant}`), role_id: id('role', a.role) };
    },
    tuple(t) {
      const tenant = t.tenant ?? tupleTenant(t.object);
      const objectType = splitInstance(t.object)?.[0] ?? t.object;
      return {
        ...base(), id: id('relationship', `${t.object}#${t.relation}@${t.subject}`), subject: t.subject, relation: t.relation, object: t.object, tenant,
        subject_id: id('resource_instance', t.subject), relation_id: id('relation', `${objectType}:${t.relation}`),
        object_id: id('resource_instance', t.object), tenant_id: id('tenant', tenant),
      };
    },
    instance(key, v) {
      const [type, k] = splitInstance(key) ?? ['', key];
      const tenant = (v.tenant as string | undefined) ?? DEFAULT_TENANT;
      return {
        ...base(), id: id('resource_instance', key), key: k, resource: type, resource_id: id('resource', type),
        tenant, tenant_id: id('tenant', tenant), attributes: v.attributes ?? {},
      };
    },
    resource(key, v, given) {
      const roles = given ?? index.resourceRoles.get(key);
      return {
        ...base(), id: id('resource', key), key, name: v.name ?? key, description: null, urn: null,
        actions: Object.fromEntries(v.actions.map((a) => [a, action(key, a)])),
        attributes: Object.fromEntries(Object.entries(v.attributes ?? {}).map(([n, kind]) => [n, attribute(key, n, kind)])),
        roles: Object.fromEntries([...(roles ?? [])].map(([r, def]) => [r, resourceRole(key, r, def)])),
        relations: Object.fromEntries(Object.entries(v.relations ?? {}).map(([n, t]) => [n, { resource_id: id('resource', t), resource: t, relation_name: n, description: null }])),
        action_groups: {},
      };
    },
    role: (key, v) => ({
      ...base(), id: id('role', key), key, name: v.name ?? key, description: null, permissions: v.permissions, extends: v.extends ?? [], attributes: {}, granted_to: null,
    }),
    resourceRole,
    action,
    attribute,
    relation,
    conditionSet: (key, v) => ({
      ...base(), id: id('condition_set', key), key, name: v.name ?? key, description: null, type: v.kind, autogenerated: false,
      resource_id: v.resource ? id('resource', v.resource) : null, conditions: v.conditions, parent_id: null,
    }),
    setRule(r) {
      const key = `${r.user_set}/${r.permission}/${r.resource_set}`;
      return { ...base(), id: id('condition_set_rule', key), key, user_set: r.user_set, permission: r.permission, resource_set: r.resource_set };
    },
  };
}
