import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { TypedApp } from '@factsync/shared/http-app';
import { FactsyncError, type ConditionSetValue, type ResourceValue, type TenantRoleValue } from '@factsync/shared';
import { readAt, type PermitDeps } from './deps.js';
import { PageQuery, paginate } from './paging.js';

const Name = Type.String({ minLength: 1, maxLength: 170 });
const Key = Type.Object({ key: Name });
const KeyItem = Type.Object({ key: Name, item: Name });
const KeyRole = Type.Object({ key: Name, role: Name });
const Paging = Type.Object(PageQuery);

/**
 * The reads and lists of Permit's schema API (resources with their actions,
 * attributes, roles and relations; tenant roles; condition sets), rendered
 * from the policy facts this agent holds, at one version.
 */
export function registerPermitSchemaReads(app: TypedApp, d: PermitDeps): void {
  const { store, views: v } = d;
  const { index } = d.decider;
  /** A read: waits for `?at_least`, stamps the version, then answers from the request's typed params. */
  const get = <P extends TSchema>(url: string, params: P | undefined, summary: string, handler: (req: { params: Static<P>; query: Static<typeof Paging> }) => unknown) =>
    app.get(url, { schema: { summary, tags: ['permit'], querystring: Paging, ...(params ? { params } : {}) } }, async (req, reply) => {
      await readAt(d, req, reply);
      // The type provider types req from a schema it knows; for the generic P of this helper, it is said once here.
      return handler(req as unknown as { params: Static<P>; query: Static<typeof Paging> });
    });
  const p = <T>(req: { params: T }) => req.params;
  const q = (req: { query: Static<typeof Paging> }) => req.query;
  const missing = (what: string, key: string) => new FactsyncError('not_found', `no ${what} "${key}" on this agent (applied version ${store.version})`);
  const resource = (key: string): ResourceValue => {
    const f = store.get('resource', key);
    if (!f) throw missing('resource', key);
    return f.value as ResourceValue;
  };
  const list = <T>(items: Iterable<T>, req: { query: Static<typeof Paging> }, render: (t: T) => unknown) => paginate(items, q(req), render).data;
  const item = <T>(found: T | undefined, what: string, key: string): T => {
    if (found === undefined) throw missing(what, key);
    return found;
  };

  get('/resources', undefined, 'List resource types (Permit)', (req) => list(store.iterate('resource'), req, (f) => v.resource(f.key, f.value as ResourceValue)));
  get('/resources/:key', Key, 'A resource type (Permit)', (req) => v.resource(p(req).key, resource(p(req).key)));
  get('/resources/:key/actions', Key, 'The actions of a resource type (Permit)', (req) => list(resource(p(req).key).actions, req, (a) => v.action(p(req).key, a)));
  get('/resources/:key/actions/:item', KeyItem, 'An action of a resource type (Permit)', (req) =>
    v.action(p(req).key, item(resource(p(req).key).actions.find((a) => a === p(req).item), 'action', p(req).item)));
  get('/resources/:key/attributes', Key, 'The attributes of a resource type (Permit)', (req) =>
    list(Object.entries(resource(p(req).key).attributes ?? {}), req, ([n, kind]) => v.attribute(p(req).key, n, kind)));
  get('/resources/:key/attributes/:item', KeyItem, 'An attribute of a resource type (Permit)', (req) =>
    v.attribute(p(req).key, p(req).item, item(resource(p(req).key).attributes?.[p(req).item], 'attribute', p(req).item)));
  get('/resources/:key/relations', Key, 'The relations of a resource type (Permit)', (req) =>
    list(Object.entries(resource(p(req).key).relations ?? {}), req, ([n, t]) => v.relation(p(req).key, n, t)));
  get('/resources/:key/relations/:item', KeyItem, 'A relation of a resource type (Permit)', (req) =>
    v.relation(p(req).key, p(req).item, item(resource(p(req).key).relations?.[p(req).item], 'relation', p(req).item)));
  get('/resources/:key/roles', Key, 'The roles of a resource type (Permit)', (req) => {
    resource(p(req).key);
    return list(index.resourceRoles.get(p(req).key) ?? [], req, ([r, def]) => v.resourceRole(p(req).key, r, def));
  });
  get('/resources/:key/roles/:role', KeyRole, 'A role of a resource type (Permit)', (req) =>
    v.resourceRole(p(req).key, p(req).role, item(index.resourceRoles.get(p(req).key)?.get(p(req).role), 'resource role', `${p(req).key}#${p(req).role}`)));
  get('/roles', undefined, 'List tenant roles (Permit)', (req) => list(store.iterate('role'), req, (f) => v.role(f.key, f.value as TenantRoleValue)));
  get('/roles/:key', Key, 'A tenant role (Permit)', (req) => v.role(p(req).key, item(store.get('role', p(req).key)?.value as TenantRoleValue | undefined, 'role', p(req).key)));
  get('/condition_sets', undefined, 'List condition sets (Permit)', (req) => list(store.iterate('condition_set'), req, (f) => v.conditionSet(f.key, f.value as ConditionSetValue)));
  get('/condition_sets/:key', Key, 'A condition set (Permit)', (req) =>
    v.conditionSet(p(req).key, item(store.get('condition_set', p(req).key)?.value as ConditionSetValue | undefined, 'condition set', p(req).key)));
}
