import {
  conditionNodes, parseCondition, splitPermission,
  type ConditionSetRuleValue, type ConditionSetValue, type RelationshipValue, type ResourceRoleValue, type ResourceValue,
  type RoleAssignmentValue, type TenantRoleValue,
} from '@factsync/shared';
import { compileCondition, type Predicate } from './compile-condition.js';
import { SparseMulti } from './sparse-multi.js';

/** Receives every fact change of the local store, in apply order. */
export interface FactObserver {
  put(type: string, key: string, value: Record<string, unknown>): void;
  remove(type: string, key: string, old: Record<string, unknown>): void;
  /** The store is about to be replaced by a snapshot. */
  reset(): void;
}

/** `cost`: its condition's nodes, the steps a test of it takes from a check's work budget. */
export interface ConditionSet { kind: 'userset' | 'resourceset'; resource: string | undefined; test: Predicate; cost: number }
export interface Rule { key: string; userSet: string; resourceSet: string }

const NONE: readonly string[] = [];
type Multi<K, V> = Map<K, Set<V>>;
function addTo<K, V>(m: Multi<K, V>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}
function removeFrom<K, V>(m: Multi<K, V>, k: K, v: V): void {
  const s = m.get(k);
  if (s?.delete(v) && s.size === 0) m.delete(k);
}

/**
 * The indexes a decision reads, kept up to date as each op is applied (a fact
 * change costs a few map operations; nothing is rebuilt). Derived views that
 * depend on the whole role graph (permissions through `extends`) are computed
 * on first use and dropped when a role changes: roles change rarely, checks
 * constantly.
 */
/** Relationship tuples as edges: `O#rel` → subject sets, and `O#rel` → plain subjects. */
export interface Edges {
  readonly usersets: SparseMulti;
  readonly subjects: SparseMulti;
}

export class PolicyIndex implements FactObserver {
  readonly roles = new Map<string, TenantRoleValue>();
  /** user → tenant → role keys. */
  readonly assignments = new Map<string, Multi<string, string>>();
  /** `tenant#role` → users holding it (for listing who may act, not for checks). */
  readonly roleHolders = new SparseMulti();
  /** resource type → its role → definition. */
  readonly resourceRoles = new Map<string, Map<string, ResourceRoleValue>>();
  readonly resources = new Map<string, ResourceValue>();
  readonly instances = new Map<string, { tenant: string; attributes: Record<string, unknown> }>();
  /** `tenant#type` → instance ids of that type in that tenant (for listing what a tenant role reaches). */
  readonly tenantInstances = new SparseMulti();
  /** `O#rel` → subject sets `S#rel2` that hold rel on O. */
  readonly usersets = new SparseMulti();
  /** `O#rel` → plain subjects `T:x` related to O by rel (of any type: a subject says its type). */
  readonly subjects = new SparseMulti();
  /** The same two for tuples of one tenant (`tenant` set): they count only in checks in that tenant. */
  private readonly tenantEdges = new Map<string, Edges>();
  private readonly edgeLists = new Map<string, readonly Edges[]>();
  private readonly untaggedOnly: readonly Edges[] = [this];
  /** subject (`T:x` or `S#rel`) → `O#rel` it appears in (for listing what a user can reach). */
  readonly reverse = new SparseMulti();
  /** entity (`user:u`, `document:1`) → attribute facts. */
  readonly entityAttributes = new Map<string, Map<string, unknown>>();
  readonly conditionSets = new Map<string, ConditionSet>();
  /** `type:action` → rules granting it. */
  readonly rules = new Map<string, Map<string, Rule>>();

  private rolePermissionCache = new Map<string, ReadonlySet<string>>();
  private grantingCache = new Map<string, readonly string[]>();
  private extendingCache: Map<string, string[]> | undefined;

  put(type: string, key: string, value: Record<string, unknown>): void {
    switch (type) {
      case 'role': this.roles.set(key, value as TenantRoleValue); this.rolePermissionCache.clear(); break;
      case 'role_assignment': {
        const v = value as RoleAssignmentValue;
        let byTenant = this.assignments.get(v.user);
        if (!byTenant) this.assignments.set(v.user, (byTenant = new Map()));
        addTo(byTenant, v.tenant, v.role);
        this.roleHolders.add(`${v.tenant}#${v.role}`, v.user);
        break;
      }
      case 'resource': this.resources.set(key, value as ResourceValue); break;
      case 'resource_role': {
        const i = key.indexOf('#');
        let m = this.resourceRoles.get(key.slice(0, i));
        if (!m) this.resourceRoles.set(key.slice(0, i), (m = new Map()));
        m.set(key.slice(i + 1), value as ResourceRoleValue);
        this.grantingCache.clear();
        this.extendingCache = undefined;
        break;
      }
      case 'resource_instance': {
        const v = value as { tenant: string; attributes?: Record<string, unknown> };
        this.instances.set(key, { tenant: v.tenant, attributes: v.attributes ?? {} });
        const i = key.indexOf(':');
        this.tenantInstances.add(`${v.tenant}#${key.slice(0, i)}`, key.slice(i + 1));
        break;
      }
      case 'relationship': this.relate(value as RelationshipValue, true); break;
      case 'attribute': {
        const v = value as { entity: string; attribute: string; value: unknown };
        let m = this.entityAttributes.get(v.entity);
        if (!m) this.entityAttributes.set(v.entity, (m = new Map()));
        m.set(v.attribute, v.value);
        break;
      }
      case 'condition_set': {
        const v = value as ConditionSetValue;
        const parsed = parseCondition(v.conditions);
        // Validated on the write path; a set that still does not parse (an older agent's grammar) matches nothing.
        this.conditionSets.set(key, { kind: v.kind, resource: v.resource, test: parsed.ok ? compileCondition(parsed.value) : () => false, cost: parsed.ok ? conditionNodes(parsed.value) : 1 });
        break;
      }
      case 'condition_set_rule': {
        const v = value as ConditionSetRuleValue;
        let m = this.rules.get(v.permission);
        if (!m) this.rules.set(v.permission, (m = new Map()));
        m.set(key, { key, userSet: v.user_set, resourceSet: v.resource_set });
        break;
      }
    }
  }

  remove(type: string, key: string, old: Record<string, unknown>): void {
    switch (type) {
      case 'role': this.roles.delete(key); this.rolePermissionCache.clear(); break;
      case 'role_assignment': {
        const v = old as RoleAssignmentValue;
        const byTenant = this.assignments.get(v.user);
        if (!byTenant) break;
        removeFrom(byTenant, v.tenant, v.role);
        this.roleHolders.remove(`${v.tenant}#${v.role}`, v.user);
        if (byTenant.size === 0) this.assignments.delete(v.user);
        break;
      }
      case 'resource': this.resources.delete(key); break;
      case 'resource_role': {
        const i = key.indexOf('#');
        const m = this.resourceRoles.get(key.slice(0, i));
        m?.delete(key.slice(i + 1));
        if (m?.size === 0) this.resourceRoles.delete(key.slice(0, i));
        this.grantingCache.clear();
        this.extendingCache = undefined;
        break;
      }
      case 'resource_instance': {
        this.instances.delete(key);
        const i = key.indexOf(':');
        this.tenantInstances.remove(`${(old as { tenant: string }).tenant}#${key.slice(0, i)}`, key.slice(i + 1));
        break;
      }
      case 'relationship': this.relate(old as RelationshipValue, false); break;
      case 'attribute': {
        const v = old as { entity: string; attribute: string };
        const m = this.entityAttributes.get(v.entity);
        m?.delete(v.attribute);
        if (m?.size === 0) this.entityAttributes.delete(v.entity);
        break;
      }
      case 'condition_set': this.conditionSets.delete(key); break;
      case 'condition_set_rule': {
        const v = old as ConditionSetRuleValue;
        const m = this.rules.get(v.permission);
        m?.delete(key);
        if (m?.size === 0) this.rules.delete(v.permission);
        break;
      }
    }
  }

  /**
   * The tuple edges a check in these tenants follows: those of no tenant, then
   * each tenant's own. One to a few sets; walks loop over them instead of
   * knowing where tenant tuples are kept.
   */
  edgesIn(...tenants: string[]): readonly Edges[] {
    // One tenant is what every check asks for: its list is kept, so a check allocates none.
    if (tenants.length === 1) return this.edgeLists.get(tenants[0]!) ?? this.untaggedOnly;
    const out: Edges[] = [this];
    for (const t of tenants) {
      const e = this.tenantEdges.get(t);
      if (e) out.push(e);
    }
    return out;
  }

  reset(): void {
    for (const m of [this.roles, this.assignments, this.roleHolders, this.resourceRoles, this.resources, this.instances, this.tenantInstances, this.usersets, this.subjects, this.tenantEdges, this.edgeLists,
      this.reverse, this.entityAttributes, this.conditionSets, this.rules, this.rolePermissionCache, this.grantingCache] as { clear(): void }[]) m.clear();
    this.extendingCache = undefined;
  }

  /** `type:action` permissions of a tenant role, through `extends` (cycles end where they close). */
  rolePermissions(role: string): ReadonlySet<string> {
    let perms = this.rolePermissionCache.get(role);
    if (perms) return perms;
    const out = new Set<string>();
    const seen = new Set<string>([role]);
    const stack = [role];
    while (stack.length > 0) {
      const r = this.roles.get(stack.pop()!);
      if (!r) continue;
      for (const p of r.permissions) out.add(p);
      for (const e of r.extends ?? []) if (!seen.has(e)) seen.add(e), stack.push(e);
    }
    this.rolePermissionCache.set(role, (perms = out));
    return perms;
  }

  /** Resource roles of `type` whose own permissions include `action` (roles extending them are reached by the search). */
  grantingRoles(type: string, action: string): readonly string[] {
    const cacheKey = `${type}:${action}`;
    let roles = this.grantingCache.get(cacheKey);
    if (roles) return roles;
    roles = [...(this.resourceRoles.get(type) ?? [])].filter(([, d]) => d.permissions.includes(action)).map(([r]) => r);
    this.grantingCache.set(cacheKey, roles);
    return roles;
  }

  /** Roles of `type` that directly extend `role`: whoever holds one of them on an object holds `role` there too. */
  rolesExtending(type: string, role: string): readonly string[] {
    if (!this.extendingCache) {
      this.extendingCache = new Map();
      for (const [t, defs] of this.resourceRoles) {
        for (const [r, d] of defs) for (const e of d.extends ?? []) {
          const k = `${t}#${e}`;
          const list = this.extendingCache.get(k);
          if (list) list.push(r);
          else this.extendingCache.set(k, [r]);
        }
      }
    }
    return this.extendingCache.get(`${type}#${role}`) ?? NONE;
  }

  /** Every action a type knows of: declared on the resource, or named by a role or rule. */
  actionsOf(type: string): string[] {
    const out = new Set<string>(this.resources.get(type)?.actions ?? []);
    for (const d of this.resourceRoles.get(type)?.values() ?? []) for (const a of d.permissions) out.add(a);
    for (const r of this.roles.values()) for (const p of r.permissions) {
      const tp = splitPermission(p);
      if (tp && tp[0] === type) out.add(tp[1]);
    }
    for (const p of this.rules.keys()) {
      const tp = splitPermission(p);
      if (tp && tp[0] === type) out.add(tp[1]);
    }
    return [...out];
  }

  private relate(v: RelationshipValue, add: boolean): void {
    const node = `${v.object}#${v.relation}`;
    let edges: Edges = this;
    if (v.tenant !== undefined) {
      let t = this.tenantEdges.get(v.tenant);
      if (!t) {
        this.tenantEdges.set(v.tenant, (t = { usersets: new SparseMulti(), subjects: new SparseMulti() }));
        this.edgeLists.set(v.tenant, [this, t]);
      }
      edges = t;
    }
    const index = v.subject.includes('#') ? edges.usersets : edges.subjects;
    if (add) {
      index.add(node, v.subject);
      this.reverse.add(v.subject, node);
    } else {
      index.remove(node, v.subject);
      this.reverse.remove(v.subject, node);
    }
  }
}
