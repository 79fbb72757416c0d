import { DEFAULT_TENANT, type Check } from '@factsync/shared';
import type { PolicyIndex } from './policy-index.js';
import type { Subjects } from './compile-condition.js';
import { MAX_CHECK_WORK, WorkBudget } from './work-budget.js';

export interface Decision {
  allow: boolean;
  /** Why, when asked for: the role, the derivation path or the rule. */
  reason?: string;
  /** The check ran out of its work budget before it found a grant: denied, as a PDP fails closed. */
  limited?: true;
}

/** Facts of users, read from the local store (the evaluator never copies them). */
export interface UserLookup {
  user(key: string): Record<string, unknown> | undefined;
  tenant(key: string): Record<string, unknown> | undefined;
}

/**
 * Most role holdings a ReBAC search visits before it gives up (and denies):
 * derivations and subject sets may form cycles or long chains, and one check
 * must stay microseconds whatever the graph.
 */
export const MAX_DERIVATION_NODES = 10_000;

/**
 * Decides checks over the PolicyIndex (docs/api.md, "Decisions on the agent"):
 * RBAC through tenant roles, ReBAC through resource roles held directly, via
 * subject sets or derived by `granted_to`, ABAC through condition set rules.
 * Synchronous: a decision sees exactly one applied version.
 */
export class Evaluator {
  constructor(private readonly index: PolicyIndex, private readonly facts: UserLookup) {}

  /** The tenant a check is decided in: the check's, else the instance's, else `default`. */
  tenantOf(c: Check): string {
    if (c.resource.tenant !== undefined) return c.resource.tenant;
    if (c.resource.key !== undefined) {
      const inst = this.index.instances.get(`${c.resource.type}:${c.resource.key}`);
      if (inst) return inst.tenant;
    }
    return DEFAULT_TENANT;
  }

  /**
   * Decides `c` within `budget` (a fresh MAX_CHECK_WORK by default). Out of
   * budget before a grant is found, the answer is a deny marked `limited`: a
   * policy that would take longer cannot hold the event loop.
   */
  check(c: Check, explain = false, budget: WorkBudget = new WorkBudget(MAX_CHECK_WORK)): Decision {
    const { type, key } = c.resource;
    const permission = `${type}:${c.action}`;
    const tenant = this.tenantOf(c);

    // RBAC
    const roles = this.index.assignments.get(c.user.key)?.get(tenant);
    if (roles) {
      budget.spend(roles.size);
      for (const role of roles) {
        if (this.index.rolePermissions(role).has(permission)) {
          return explain ? { allow: true, reason: `role "${role}" in tenant "${tenant}" grants ${permission}` } : { allow: true };
        }
      }
    }

    // ReBAC
    if (key !== undefined) {
      const granting = this.index.grantingRoles(type, c.action);
      if (granting.length > 0) {
        const found = this.holdsAny(c.user.key, granting.map((r) => `${type}:${key}#${r}`), explain, tenant, budget);
        if (found) return { allow: true, ...(explain ? { reason: found } : {}) };
        if (budget.exhausted) return this.limited(permission, budget);
      }
    }

    // ABAC
    const rules = this.index.rules.get(permission);
    if (rules) {
      let subjects: Subjects | undefined;
      for (const rule of rules.values()) {
        if (!budget.spend(1)) return this.limited(permission, budget);
        const us = this.index.conditionSets.get(rule.userSet);
        if (!us || us.kind !== 'userset') continue;
        const rs = this.index.conditionSets.get(rule.resourceSet);
        const typeWide = !rs && rule.resourceSet === type;
        if (!typeWide && (!rs || rs.kind !== 'resourceset' || (rs.resource !== undefined && rs.resource !== type))) continue;
        subjects ??= this.subjects(c, tenant);
        if (!budget.spend(us.cost + (typeWide ? 0 : rs!.cost))) return this.limited(permission, budget);
        if (us.test(subjects) && (typeWide || rs!.test(subjects))) {
          return explain ? { allow: true, reason: `rule ${rule.key}: user set "${rule.userSet}" and resource set "${rule.resourceSet}" match` } : { allow: true };
        }
      }
    }
    return explain ? { allow: false, reason: `no role in tenant "${tenant}", resource role or rule grants ${permission} to "${c.user.key}"` } : { allow: false };
  }

  private limited(permission: string, budget: WorkBudget): Decision {
    return { allow: false, limited: true, reason: `denied: deciding ${permission} took more than ${budget.limit} steps (roles, holdings, rules and condition nodes) before a grant was found; simplify the policy (fewer rules per permission, smaller condition sets)` };
  }

  /** The merged attributes conditions read: stored, then attribute facts, then the check's, then built-ins. */
  subjects(c: Check, tenant: string): Subjects {
    const stored = this.facts.user(c.user.key);
    // Null prototypes: attribute names are user input (`__proto__` must stay a name, not a prototype).
    const user: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    if (stored) {
      for (const f of ['email', 'first_name', 'last_name'] as const) if (stored[f] !== undefined) user[f] = stored[f];
      Object.assign(user, stored.attributes as Record<string, unknown> | undefined);
    }
    for (const [k, v] of this.index.entityAttributes.get(`user:${c.user.key}`) ?? []) user[k] = v;
    Object.assign(user, c.user.attributes);
    user.key = c.user.key;

    const resource: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    if (c.resource.key !== undefined) {
      const id = `${c.resource.type}:${c.resource.key}`;
      // An instance of another tenant is not this check's resource: a check in tenant T reads only T's
      // facts and facts of no tenant, which is what lets a scoped agent answer as a whole one.
      const inst = this.index.instances.get(id);
      if (inst?.tenant === tenant) Object.assign(resource, inst.attributes);
      for (const [k, v] of this.index.entityAttributes.get(id) ?? []) resource[k] = v;
    }
    Object.assign(resource, c.resource.attributes);
    resource.type = c.resource.type;
    if (c.resource.key !== undefined) resource.key = c.resource.key;
    resource.tenant = tenant;
    return { user, resource };
  }

  /**
   * Whether the user holds one of the role holdings `O#role`: a breadth-first
   * search over subject sets and `granted_to` derivations, each holding visited
   * once (so cycles end), at most MAX_DERIVATION_NODES. Returns a description
   * of the path found, or undefined.
   */
  holdsAny(userKey: string, starts: readonly string[], explain: boolean, tenant: string, budget?: WorkBudget): string | undefined {
    const { resourceRoles } = this.index;
    // Tuples of the check's tenant count beside those of no tenant; another tenant's never do.
    const edges = this.index.edgesIn(tenant);
    const subject = `user:${userKey}`;
    // Each holding visited once; the map also remembers where it was reached from, for the reason.
    const parent = new Map<string, string | null>();
    const queue: string[] = [];
    for (const s of starts) if (!parent.has(s)) parent.set(s, null), queue.push(s);
    let from = '';
    const visit = (n: string) => {
      if (!parent.has(n) && parent.size < MAX_DERIVATION_NODES) parent.set(n, from), queue.push(n);
    };
    for (let head = 0; head < queue.length; head++) {
      if (budget && !budget.spend(1)) return undefined;
      const node = (from = queue[head]!);
      for (const e of edges) if (e.subjects.has(node, subject)) return explain ? this.describe(node, parent, userKey) : 'held';
      if (parent.size >= MAX_DERIVATION_NODES) continue;
      for (const e of edges) for (const us of e.usersets.values(node)) visit(us);
      const hash = node.lastIndexOf('#');
      const object = node.slice(0, hash);
      const role = node.slice(hash + 1);
      // Holdings are keyed by validated type:id objects, so the type is what precedes the first colon.
      const type = object.slice(0, object.indexOf(':'));
      // A role that extends this one includes it: its holders hold this role too.
      for (const r of this.index.rolesExtending(type, role)) visit(`${object}#${r}`);
      const grants = resourceRoles.get(type)?.get(role)?.granted_to;
      if (grants) {
        for (const g of grants) {
          const on = `${g.on}:`;
          for (const e of edges) for (const o of e.subjects.values(`${object}#${g.via}`)) if (o.startsWith(on)) visit(`${o}#${g.role}`);
        }
      }
    }
    return undefined;
  }

  private describe(found: string, parent: Map<string, string | null>, userKey: string): string {
    const path: string[] = [];
    for (let n: string | null | undefined = found; n; n = parent.get(n)) path.push(n);
    path.reverse();
    return path.length === 1
      ? `"${userKey}" holds ${found}`
      : `"${userKey}" holds ${found}, which gives ${path.slice(0, -1).reverse().join(', which gives ')}`;
  }
}
