import { DEFAULT_TENANT, splitInstance, type Check } from '@factsync/shared';
import type { LocalStore } from '../local-store.js';
import { MAX_DERIVATION_NODES, type Decision, type Evaluator } from './evaluator.js';
import { CANDIDATE_WORK, MAX_CHECK_WORK, MAX_PAGE_WORK, WorkBudget } from './work-budget.js';
import type { PolicyIndex } from './policy-index.js';
import { reachableInstances } from './user-permissions.js';

/**
 * Most candidates one page examines. A page that runs out of them before it
 * is full ends early with a `next` cursor, so no request does unbounded work,
 * whatever the model (an ABAC rule makes every user a candidate).
 */
export const MAX_CANDIDATES_PER_PAGE = 20_000;
export const MAX_PAGE = 1000;

export interface PageRequest { after?: string; limit: number }
/** A page of keys in ascending order; `next` (the last key examined) continues it, null at the end. */
export interface KeyPage { keys: string[]; next: string | null }

/** The ascending union of sorted streams, without repeats, starting after `after`. */
function* union(after: string | undefined, ...streams: Iterable<string>[]): Iterable<string> {
  const its = streams.map((s) => s[Symbol.iterator]());
  const heads = its.map((it) => it.next());
  let last = after;
  for (;;) {
    let min: string | undefined;
    for (const h of heads) if (!h.done && (min === undefined || h.value < min)) min = h.value;
    if (min === undefined) return;
    for (let i = 0; i < its.length; i++) while (!heads[i]!.done && heads[i]!.value <= min) heads[i] = its[i]!.next();
    if (last === undefined || min > last) yield (last = min);
  }
}

const sortedAfter = (keys: Iterable<string>, after: string | undefined) => [...keys].filter((k) => after === undefined || k > after).sort();
function* keysOf(facts: Iterable<{ key: string }>, strip = 0): Iterable<string> {
  for (const f of facts) yield f.key.slice(strip);
}

function* objectsOf(facts: Iterable<{ key: string }>, strip: number): Iterable<string> {
  for (const f of facts) yield f.key.slice(strip, f.key.indexOf('#'));
}

/**
 * The questions that list rather than check: who may do A on R, which
 * resources of a type U may act on, which actions U has on R, in which
 * tenants U may act. Candidates come from reverse indexes (role holders of a
 * tenant, the derivation graph walked backwards from an instance, the
 * instances a user reaches) and, where a condition set rule could allow
 * anyone, from every user or instance in key order; each candidate is then
 * decided by the same `Evaluator.check`, so a listed answer can never
 * disagree with a check.
 */
export class Enumerator {
  constructor(private readonly store: LocalStore, private readonly index: PolicyIndex, private readonly evaluator: Evaluator) {}

  /** Users allowed `c.action` on `c.resource` (the check's user gives only just-in-time attributes). */
  subjects(c: Check, page: PageRequest): KeyPage {
    const { type, key } = c.resource;
    const permission = `${type}:${c.action}`;
    const tenant = this.evaluator.tenantOf(c);
    const found = new Set<string>();
    for (const [role] of this.index.roles) {
      if (this.index.rolePermissions(role).has(permission)) for (const u of this.index.roleHolders.values(`${tenant}#${role}`)) found.add(u);
    }
    if (key !== undefined) {
      const granting = this.index.grantingRoles(type, c.action);
      for (const u of this.holders(granting.map((r) => `${type}:${key}#${r}`), tenant)) found.add(u);
    }
    const streams: Iterable<string>[] = [sortedAfter(found, page.after)];
    if (this.index.rules.has(permission)) {
      // A rule matches attributes: any user the agent knows of may match.
      streams.push(keysOf(this.store.iterate('user', '', page.after)));
      streams.push(sortedAfter(this.usersWithoutFacts(tenant), page.after));
    }
    return this.collect(union(page.after, ...streams), page, (u, b) => this.evaluator.check({ ...c, user: { key: u, attributes: c.user.attributes } }, false, b));
  }

  /** Instance keys (without the type) of `c.resource.type` on which `c.user` may do `c.action`. */
  resources(c: Check, page: PageRequest): KeyPage {
    const { type } = c.resource;
    const permission = `${type}:${c.action}`;
    const prefix = `${type}:`;
    const from = page.after === undefined ? undefined : prefix + page.after;
    const reached = reachableInstances(c.user.key, this.index).filter((i) => i.type === type).map((i) => i.key);
    const streams: Iterable<string>[] = [sortedAfter(reached, page.after)];
    const grants = (tenant: string) => [...this.index.assignments.get(c.user.key)?.get(tenant) ?? []].some((r) => this.index.rolePermissions(r).has(permission));
    const everything = () => {
      streams.push(keysOf(this.store.iterate('resource_instance', prefix, from), prefix.length));
      // Objects named only by relationships (`type:id#rel@…`, in key order) exist too.
      streams.push(objectsOf(this.store.iterate('relationship', prefix, from), prefix.length));
    };
    if (this.index.rules.has(permission) || (c.resource.tenant !== undefined && grants(c.resource.tenant))) everything();
    else if (c.resource.tenant === undefined) {
      // A tenant role reaches the instances of its tenant; objects without an instance fact are in `default`.
      for (const tenant of this.index.assignments.get(c.user.key)?.keys() ?? []) {
        if (!grants(tenant)) continue;
        streams.push(sortedAfter(this.index.tenantInstances.values(`${tenant}#${type}`), page.after));
        if (tenant === DEFAULT_TENANT) streams.push(objectsOf(this.store.iterate('relationship', prefix, from), prefix.length));
      }
    }
    return this.collect(union(page.after, ...streams), page, (k, b) => this.evaluator.check({ ...c, resource: { ...c.resource, key: k } }, false, b));
  }

  /** Actions `c.user` may do on `c.resource`, sorted (every action the type knows of, checked). */
  actions(c: Omit<Check, 'action'>): string[] {
    return this.index.actionsOf(c.resource.type).filter((action) => this.evaluator.check({ ...c, action }).allow).sort();
  }

  /** Tenants in which `c` is allowed when decided with that tenant: every tenant the agent's facts name. */
  tenants(c: Check, page: PageRequest): KeyPage {
    // Every tenant some fact names: the default one, tenants with role holders, the instance's.
    const own = new Set<string>([DEFAULT_TENANT]);
    for (const k of this.index.roleHolders.keys()) own.add(k.slice(0, k.lastIndexOf('#')));
    const home = c.resource.key === undefined ? undefined : this.index.instances.get(`${c.resource.type}:${c.resource.key}`)?.tenant;
    if (home !== undefined) own.add(home);
    return this.collect(union(page.after, sortedAfter(own, page.after), keysOf(this.store.iterate('tenant', '', page.after))), page,
      (t, b) => this.evaluator.check({ ...c, resource: { ...c.resource, tenant: t } }, false, b));
  }

  /** The tenants in which the user holds a role, tenant-wide or on an instance of the tenant. */
  userTenants(user: string): string[] {
    const out = new Set(this.index.assignments.get(user)?.keys() ?? []);
    for (const i of reachableInstances(user, this.index)) out.add(this.index.instances.get(`${i.type}:${i.key}`)?.tenant ?? 'default');
    return [...out].sort();
  }

  /**
   * A page of the candidates `decide` allows, bounded by its limit, its
   * candidates and its work (MAX_PAGE_WORK): past either bound it ends early
   * with `next`, the last key it decided. A candidate is decided with the
   * page's budget left (at most MAX_CHECK_WORK); one that ran out of a smaller
   * share is left to the next page, one that ran out of a whole check's budget
   * is denied, as a check of it would be.
   */
  private collect(candidates: Iterable<string>, page: PageRequest, decide: (k: string, budget: WorkBudget) => Decision): KeyPage {
    const keys: string[] = [];
    const work = new WorkBudget(MAX_PAGE_WORK);
    let examined = 0;
    let last: string | undefined;
    for (const k of candidates) {
      if (keys.length >= page.limit || examined >= MAX_CANDIDATES_PER_PAGE || work.left === 0) return { keys, next: last ?? null };
      const share = new WorkBudget(Math.min(MAX_CHECK_WORK, work.left));
      const d = decide(k, share);
      work.spend(Math.min(share.used, share.limit) + CANDIDATE_WORK);
      if (d.limited && share.limit < MAX_CHECK_WORK && last !== undefined) return { keys, next: last };
      examined++;
      last = k;
      if (d.allow) keys.push(k);
    }
    return { keys, next: null };
  }

  /**
   * Users who hold one of the holdings `O#role`: the evaluator's search walked
   * from the same starts (subject sets, roles extending, `granted_to`), keeping
   * every user met instead of looking for one.
   */
  private holders(starts: readonly string[], tenant: string): Set<string> {
    const { resourceRoles } = this.index;
    const edges = this.index.edgesIn(tenant);
    const seen = new Set<string>(starts);
    const queue = [...seen];
    const users = new Set<string>();
    const visit = (n: string) => {
      if (!seen.has(n) && seen.size < MAX_DERIVATION_NODES) seen.add(n), queue.push(n);
    };
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head]!;
      for (const e of edges) {
        for (const s of e.subjects.values(node)) if (s.startsWith('user:')) users.add(s.slice(5));
        for (const us of e.usersets.values(node)) visit(us);
      }
      const hash = node.lastIndexOf('#');
      const object = node.slice(0, hash);
      const role = node.slice(hash + 1);
      const type = splitInstance(object)?.[0] ?? '';
      for (const r of this.index.rolesExtending(type, role)) visit(`${object}#${r}`);
      for (const g of resourceRoles.get(type)?.get(role)?.granted_to ?? []) {
        const on = `${g.on}:`;
        for (const e of edges) for (const o of e.subjects.values(`${object}#${g.via}`)) if (o.startsWith(on)) visit(`${o}#${g.role}`);
      }
    }
    return users;
  }

  /**
   * Users the agent knows of from facts other than their own `user` fact (a
   * role in the tenant, a relationship of no tenant or of the tenant, an
   * attribute fact): a rule may match any of them.
   * A walk of three indexes, paid only by a search a rule could answer.
   */
  private usersWithoutFacts(tenant: string): Set<string> {
    // Only facts a check in `tenant` reads (that tenant's and those of no tenant): what a scoped agent holds too.
    const out = new Set<string>();
    for (const [u, byTenant] of this.index.assignments) if (byTenant.has(tenant)) out.add(u);
    for (const e of this.index.entityAttributes.keys()) if (e.startsWith('user:')) out.add(e.slice(5));
    const edges = this.index.edgesIn(tenant);
    for (const s of this.index.reverse.keys()) {
      if (!s.startsWith('user:')) continue;
      for (const node of this.index.reverse.values(s)) {
        if (edges.some((e) => e.subjects.has(node, s))) {
          out.add(s.slice(5));
          break;
        }
      }
    }
    return out;
  }
}
