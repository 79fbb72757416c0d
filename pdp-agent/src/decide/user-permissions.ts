import { CANDIDATE_WORK, MAX_CHECK_WORK, MAX_PAGE_WORK, WorkBudget } from './work-budget.js';
import { splitInstance, type Check } from '@factsync/shared';
import { MAX_DERIVATION_NODES, type Evaluator, type UserLookup } from './evaluator.js';
import type { PolicyIndex } from './policy-index.js';

export interface PermissionsQuery {
  user: Check['user'];
  tenants: string[] | undefined;
  resources: { type: string; key: string }[] | undefined;
  resourceTypes: string[] | undefined;
}

export interface TenantEntry { tenant: { key: string; attributes: Record<string, unknown> }; permissions: string[]; roles: string[] }
export interface ResourceEntry {
  resource: { key: string; type: string; attributes: Record<string, unknown> };
  tenant: { key: string; attributes: Record<string, unknown> };
  permissions: string[];
  roles: string[];
}

/** Most resource instances one answer lists, so one request cannot walk a whole env. */
export const MAX_LISTED_INSTANCES = 1000;

/**
 * Permit's `/user-permissions`: per tenant the user has roles in, its roles and
 * their permissions; per resource instance (the ones asked for, else the ones
 * the user holds a role on, directly, through a subject set or derived), the
 * permissions every check on it would allow. Instances are judged by the same
 * Evaluator.check, so this answer can never disagree with a check.
 */
export function userPermissions(q: PermissionsQuery, index: PolicyIndex, evaluator: Evaluator, facts: UserLookup) {
  const out: Record<string, TenantEntry | ResourceEntry> = {};
  const typeAllowed = (t: string) => q.resourceTypes === undefined || q.resourceTypes.includes(t);
  const assigned = index.assignments.get(q.user.key);

  for (const tenant of q.tenants ?? [...(assigned?.keys() ?? [])]) {
    const roles = [...(assigned?.get(tenant) ?? [])];
    if (roles.length === 0 && q.tenants === undefined) continue;
    const permissions = new Set<string>();
    for (const r of roles) for (const p of index.rolePermissions(r)) if (typeAllowed(p.slice(0, p.indexOf(':')))) permissions.add(p);
    const attributes = (facts.tenant(tenant)?.attributes as Record<string, unknown> | undefined) ?? {};
    out[`__tenant:${tenant}`] = { tenant: { key: tenant, attributes }, permissions: [...permissions].sort(), roles: roles.sort() };
  }

  const instances = q.resources ?? reachableInstances(q.user.key, index, q.tenants);
  // The actions of a type walk every role and rule: once per type, not once per instance.
  const actions = new Map<string, string[]>();
  // With `tenants`, only instances of those tenants (by their instance fact): what a scoped agent
  // serving them holds too, so both answer alike.
  const inTenants = (type: string, key: string) => q.tenants === undefined || q.tenants.includes(index.instances.get(`${type}:${key}`)?.tenant ?? '\u0000');
  // Like a listing page, the answer stops growing once its work is spent (work-budget.ts).
  const work = new WorkBudget(MAX_PAGE_WORK);
  const share = (): WorkBudget => new WorkBudget(Math.max(1, Math.min(MAX_CHECK_WORK, work.left)));
  for (const { type, key } of instances.slice(0, MAX_LISTED_INSTANCES)) {
    if (work.left === 0) break;
    if (!typeAllowed(type) || !inTenants(type, key)) continue;
    const check: Check = { user: q.user, action: '', resource: { type, key, tenant: undefined, attributes: {} } };
    const permissions: string[] = [];
    let ofType = actions.get(type);
    if (!ofType) actions.set(type, (ofType = index.actionsOf(type)));
    for (const action of ofType) {
      const b = share();
      if (evaluator.check({ ...check, action }, false, b).allow) permissions.push(`${type}:${action}`);
      work.spend(b.used + CANDIDATE_WORK);
    }
    const tenant = evaluator.tenantOf(check);
    const roles = [...(index.resourceRoles.get(type)?.keys() ?? [])].filter((r) => {
      const b = share();
      const held = evaluator.holdsAny(q.user.key, [`${type}:${key}#${r}`], false, tenant, b) !== undefined;
      work.spend(b.used);
      return held;
    });
    if (permissions.length === 0 && roles.length === 0) continue;
    const attributes = index.instances.get(`${type}:${key}`)?.attributes ?? {};
    out[`${type}:${key}`] = {
      resource: { key, type, attributes },
      tenant: { key: tenant, attributes: (facts.tenant(tenant)?.attributes as Record<string, unknown> | undefined) ?? {} },
      permissions: permissions.sort(), roles: roles.sort(),
    };
  }
  return out;
}

/**
 * Instances on which the user may hold a resource role: walk the reverse
 * edges from `user:key` (direct relationships, subject sets that contain a
 * holding, objects related to a held object by a `granted_to` relation).
 */
export function reachableInstances(userKey: string, index: PolicyIndex, tenants?: readonly string[]): { type: string; key: string }[] {
  // With `tenants`, only through tuples of no tenant or of those tenants (what a scoped agent of them holds).
  const edges = tenants ? index.edgesIn(...tenants) : undefined;
  const edge = (node: string, subject: string): boolean =>
    !edges || edges.some((e) => (subject.includes('#') ? e.usersets : e.subjects).has(node, subject));
  const seen = new Set<string>();
  const objects = new Set<string>();
  const queue: string[] = [];
  const visit = (holding: string) => {
    if (!seen.has(holding) && seen.size < MAX_DERIVATION_NODES) seen.add(holding), queue.push(holding);
  };
  for (const node of index.reverse.values(`user:${userKey}`)) if (edge(node, `user:${userKey}`)) visit(node);
  for (let head = 0; head < queue.length; head++) {
    const holding = queue[head]!;
    const hash = holding.lastIndexOf('#');
    const object = holding.slice(0, hash);
    const role = holding.slice(hash + 1);
    objects.add(object);
    for (const n of index.reverse.values(holding)) if (edge(n, holding)) visit(n);
    const heldType = splitInstance(object)?.[0];
    // Holding a role holds every role it extends, and what those are granted to.
    for (const e of (heldType && index.resourceRoles.get(heldType)?.get(role)?.extends) || []) visit(`${object}#${e}`);
    // Objects X related to `object` by some relation `via` (X#via@object): X's roles granted to `role` on heldType via it.
    for (const rel of index.reverse.values(object)) {
      if (!edge(rel, object)) continue;
      const h = rel.lastIndexOf('#');
      const x = rel.slice(0, h);
      const via = rel.slice(h + 1);
      const xType = splitInstance(x)?.[0];
      for (const [xRole, def] of (xType && index.resourceRoles.get(xType)) || []) {
        if (def.granted_to?.some((g) => g.role === role && g.on === heldType && g.via === via)) visit(`${x}#${xRole}`);
      }
    }
  }
  const out: { type: string; key: string }[] = [];
  for (const o of objects) {
    const tk = splitInstance(o);
    if (tk && index.resourceRoles.has(tk[0])) out.push({ type: tk[0], key: tk[1] });
  }
  return out;
}
