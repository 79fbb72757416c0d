import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox';
import type { TypedApp } from '@factsync/shared/http-app';
import { FactKey, FactsyncError, splitInstance, type RelationshipValue, type RoleAssignmentValue } from '@factsync/shared';
import { readAt, type PermitDeps } from './deps.js';
import { Filter, PageQuery, paginate, paginated } from './paging.js';
import type { AssignmentRef, TupleRef } from './views.js';

const Key = Type.Object({ key: FactKey });
const Paging = Type.Object(PageQuery);
const UsersQuery = Type.Object({
  ...PageQuery,
  search: Type.Optional(Type.String({ maxLength: 512, description: 'part of the key or e-mail, any case' })),
  role: Type.Optional(Type.String({ maxLength: 170, description: 'only users holding this tenant role somewhere' })),
});
const AssignmentQuery = Type.Object({ ...PageQuery, user: Filter, role: Filter, tenant: Filter, resource: Filter, resource_instance: Filter });
const TupleQuery = Type.Object({
  ...PageQuery,
  subject: Type.Optional(Type.String({ minLength: 1 })), relation: Type.Optional(Type.String({ minLength: 1 })),
  object: Type.Optional(Type.String({ minLength: 1 })), tenant: Type.Optional(Type.String({ minLength: 1 })),
});
const InstanceQuery = Type.Object({ ...PageQuery, tenant: Type.Optional(Type.String({ minLength: 1 })), resource: Type.Optional(Type.String({ minLength: 1 })) });
const RuleQuery = Type.Object({ ...PageQuery, user_set: Type.Optional(Type.String()), permission: Type.Optional(Type.String()), resource_set: Type.Optional(Type.String()) });

type Q = { page?: number; per_page?: number };
export interface AssignmentFilter { user?: string[]; role?: string[]; tenant?: string[]; resource?: string[]; resource_instance?: string[] }

/**
 * Role assignments as Permit lists them: tenant-wide ones (role_assignment
 * facts) and instance ones (relationships `type:id#role@user:key` whose
 * relation is a role of the type), filtered. Reads from the indexes where a
 * filter names the user, else walks the facts in key order.
 */
export function* assignmentsOf(d: PermitDeps, f: AssignmentFilter): Iterable<AssignmentRef & { tenant: string }> {
  const { store } = d;
  const { index } = d.decider;
  const has = (list: string[] | undefined, x: string) => list === undefined || list.includes(x);
  if (f.resource === undefined && f.resource_instance === undefined) {
    const facts = f.user ? f.user.flatMap((u) => [...store.iterate('role_assignment', `${u}/`)]) : store.iterate('role_assignment');
    for (const fact of facts) {
      const a = fact.value as RoleAssignmentValue;
      if (has(f.user, a.user) && has(f.role, a.role) && has(f.tenant, a.tenant)) yield a;
    }
  }
  const held = (object: string, relation: string) => {
    const type = splitInstance(object)?.[0];
    return type !== undefined && index.resourceRoles.get(type)?.has(relation) === true;
  };
  const instance = (object: string, relation: string, user: string) => {
    const type = splitInstance(object)![0];
    if (!has(f.role, relation) || !has(f.resource, type)) return undefined;
    if (f.resource_instance && !f.resource_instance.some((ri) => ri === object || `${type}:${ri}` === object)) return undefined;
    const tenant = d.views.tupleTenant(object);
    return has(f.tenant, tenant) ? { user, role: relation, tenant, resource_instance: object } : undefined;
  };
  if (f.user) {
    for (const user of f.user) {
      for (const node of index.reverse.values(`user:${user}`)) {
        const h = node.lastIndexOf('#');
        const object = node.slice(0, h);
        if (!held(object, node.slice(h + 1))) continue;
        const a = instance(object, node.slice(h + 1), user);
        if (a) yield a;
      }
    }
    return;
  }
  for (const fact of store.iterate('relationship')) {
    const r = fact.value as RelationshipValue;
    if (!r.subject.startsWith('user:') || !held(r.object, r.relation)) continue;
    const a = instance(r.object, r.relation, r.subject.slice(5));
    if (a) yield a;
  }
}

function* tuplesOf(d: PermitDeps, f: { subject?: string; relation?: string; object?: string; tenant?: string }): Iterable<TupleRef> {
  const { index } = d.decider;
  // A tuple's tenant: its own when it names one, else its object instance's.
  const tenantOf = (t: TupleRef) => t.tenant ?? d.views.tupleTenant(t.object);
  const match = (t: TupleRef) => (f.subject === undefined || t.subject === f.subject) && (f.relation === undefined || t.relation === f.relation)
    && (f.object === undefined || t.object === f.object) && (f.tenant === undefined || tenantOf(t) === f.tenant);
  if (f.subject !== undefined && f.object === undefined) {
    for (const node of index.reverse.values(f.subject)) {
      const stored = d.store.get('relationship', `${node}@${f.subject}`)?.value as RelationshipValue | undefined;
      if (stored && match(stored)) yield stored;
    }
    return;
  }
  const prefix = f.object === undefined ? '' : f.relation === undefined ? `${f.object}#` : `${f.object}#${f.relation}@`;
  for (const fact of d.store.iterate('relationship', prefix)) {
    const r = fact.value as RelationshipValue;
    if (match(r)) yield r;
  }
}

/**
 * The reads and lists of Permit's fact API (users, tenants and their users,
 * role assignments, relationship tuples, resource instances, condition set
 * rules), answered from this agent's facts at one version (the version is in
 * X-Factsync-Version; `?at_least=V` reads one's own writes). Lists page by
 * `page`/`per_page` in key order.
 */
export function registerPermitFactsReads(app: TypedApp, d: PermitDeps): void {
  const { store, views: v } = d;
  /** A read: waits for `?at_least`, stamps the version, then answers from the request's typed query and params. */
  const get = <Q extends TObject, P extends TSchema = TObject<{}>>(url: string, querystring: Q, params: P | undefined, summary: string,
    handler: (req: { query: Static<Q>; params: Static<P> }) => unknown) =>
    app.get(url, { schema: { summary, tags: ['permit'], querystring, ...(params ? { params } : {}) } }, async (req, reply) => {
      // The type provider types req from a schema it knows; for the generic Q and P of this helper, it is said once here.
      const typed = req as unknown as { query: Static<Q>; params: Static<P>; headers: typeof req.headers };
      await readAt(d, { query: typed.query as { at_least?: string }, headers: req.headers }, reply);
      return handler(typed);
    });
  const { decider } = d;
  /** A tenant filter on a scoped agent: every tenant named must be served, and no filter would list every tenant. */
  const tenantsServed = (tenants: readonly string[] | undefined, what: string) => {
    if (tenants === undefined) decider.requireWhole(`list ${what} of every tenant (filter by ?tenant=)`);
    else for (const t of tenants) decider.requireServed(t);
  };
  const one = (type: string, what: string, render: (key: string, value: Record<string, unknown>) => unknown) => (req: { params: { key: string } }) => {
    const key = req.params.key;
    const f = store.get(type, key);
    if (!f) decider.requireAbsentIsKnown(type, key);
    if (!f) throw new FactsyncError('not_found', `no ${what} "${key}" on this agent (applied version ${store.version}); a key, not an id, addresses it`);
    return render(key, f.value);
  };
  const q = (req: { query: Q }) => req.query;

  get('/users', UsersQuery, undefined, 'List users (Permit)', (req) => {
    const { search, role } = req.query;
    if (search === undefined && role === undefined) {
      const page = paginate(store.iterate('user'), q(req), (f) => v.user(f.key, f.value));
      return paginated({ data: page.data, total: store.countOf('user') }, q(req).per_page);
    }
    if (role !== undefined) decider.requireWhole('list the users holding a role in any tenant');
    const needle = search?.toLowerCase();
    const roles = d.decider.index.assignments;
    function* matching() {
      for (const f of store.iterate('user')) {
        if (needle !== undefined && !f.key.toLowerCase().includes(needle) && !String(f.value.email ?? '').toLowerCase().includes(needle)) continue;
        if (role !== undefined && ![...roles.get(f.key)?.values() ?? []].some((rs) => rs.has(role))) continue;
        yield f;
      }
    }
    return paginated(paginate(matching(), q(req), (f) => v.user(f.key, f.value), true), q(req).per_page);
  });
  get('/users/:key', Paging, Key, 'A user (Permit)', one('user', 'user', v.user));
  get('/tenants', Paging, undefined, 'List tenants (Permit)', (req) => (decider.requireWhole('list every tenant'), paginate(store.iterate('tenant'), q(req), (f) => v.tenant(f.key, f.value)).data));
  get('/tenants/:key', Paging, Key, 'A tenant (Permit)', one('tenant', 'tenant', v.tenant));
  get('/tenants/:key/users', Paging, Key, 'The users with a role in a tenant (Permit)', (req) => {
    const tenant = req.params.key;
    decider.requireServed(tenant);
    function* users() {
      const seen = new Set<string>();
      for (const a of assignmentsOf(d, { tenant: [tenant] })) {
        if (!seen.has(a.user)) seen.add(a.user), yield a.user;
      }
    }
    const page = paginate(users(), q(req), (user) => v.user(user, store.get('user', user)?.value ?? {}), true);
    return paginated(page, q(req).per_page);
  });
  get('/role_assignments', AssignmentQuery, undefined, 'List role assignments, tenant-wide and on resource instances (Permit)', (req) =>
    (tenantsServed(req.query.tenant, 'role assignments'), paginate(assignmentsOf(d, req.query), q(req), v.assignment).data));
  get('/relationship_tuples', TupleQuery, undefined, 'List relationship tuples (Permit)', (req) => {
    if (req.query.tenant !== undefined) decider.requireServed(req.query.tenant);
    return paginate(tuplesOf(d, req.query), q(req), v.tuple).data;
  });
  get('/resource_instances', InstanceQuery, undefined, 'List resource instances (Permit)', (req) => {
    const { tenant, resource } = req.query;
    tenantsServed(tenant === undefined ? undefined : [tenant], 'resource instances');
    function* instances() {
      for (const f of store.iterate('resource_instance', resource === undefined ? '' : `${resource}:`)) {
        if (tenant === undefined || f.value.tenant === tenant) yield f;
      }
    }
    return paginate(instances(), q(req), (f) => v.instance(f.key, f.value)).data;
  });
  get('/resource_instances/:key', Paging, Key, 'A resource instance, by type:key (Permit)', one('resource_instance', 'resource instance', v.instance));
  get('/set_rules', RuleQuery, undefined, 'List condition set rules (Permit)', (req) => {
    const f = req.query;
    function* rules() {
      for (const r of store.iterate('condition_set_rule')) {
        const x = r.value as { user_set: string; permission: string; resource_set: string };
        if ((f.user_set ?? x.user_set) === x.user_set && (f.permission ?? x.permission) === x.permission && (f.resource_set ?? x.resource_set) === x.resource_set) yield x;
      }
    }
    return paginate(rules(), q(req), v.setRule).data;
  });
}
