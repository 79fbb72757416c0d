import type { FastifyReply } from 'fastify';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { TypedApp } from '@factsync/shared/http-app';
import { AtLeastQuery, CheckRequest, CheckResource, CheckUser, FactsyncError, normalizeCheck, normalizeUser, type Check } from '@factsync/shared';
import { readAtOneVersion } from '../apply-gate.js';
import { MAX_PAGE, type KeyPage, type PageRequest } from '../decide/enumerate.js';
import { readAt, type PermitDeps } from './deps.js';
import { assignmentsOf, type AssignmentFilter } from './facts-reads.js';
import { paginate } from './paging.js';

/** Most users `/authorized_users` and tenants `/allowed/all-tenants` list (Permit's answers have no pages; AuthZEN search has). */
export const MAX_LISTED = 10_000;

const Context = Type.Optional(Type.Record(Type.String(), Type.Unknown()));
const AuthorizedUsersRequest = Type.Object({
  action: Type.String({ minLength: 1, maxLength: 170 }), resource: CheckResource, context: Context, sdk: Type.Optional(Type.String()),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'users in one answer (default and most 1,000)' })),
  page_token: Type.Optional(Type.String({ maxLength: 4096, description: 'the X-Next-Page-Token of the previous answer' })),
}, { additionalProperties: false });
const UserTenantsRequest = Type.Object({ user: CheckUser, context: Context, sdk: Type.Optional(Type.String()) }, { additionalProperties: false });
const AtLeast = AtLeastQuery;
const Filter = Type.Optional(Type.String({ minLength: 1, maxLength: 600 }));
const LocalAssignmentsQuery = Type.Object({
  ...AtLeast.properties,
  user: Filter, role: Filter, tenant: Filter, resource: Filter, resource_instance: Filter,
  page: Type.Optional(Type.Integer({ minimum: 1, default: 1 })), per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 30 })),
});

/**
 * The pages of an enumeration from `after`, up to `max` keys, and where to go
 * on (null: the end). Each page is bounded in work (enumerate.ts); between
 * pages the read yields (`pause`, apply-gate.ts), at one version.
 */
async function pages(list: (p: PageRequest) => KeyPage, pause: () => Promise<void>, max = MAX_LISTED, after?: string): Promise<KeyPage> {
  const keys: string[] = [];
  for (let n = 1; ; n++) {
    const page = list({ after, limit: max - keys.length });
    keys.push(...page.keys);
    after = page.next ?? undefined;
    if (after === undefined) return { keys, next: null };
    if (keys.length >= max || n >= MAX_PAGES_PER_REQUEST) return { keys, next: after };
    await pause();
  }
}

/** Most enumeration pages one request reads (each bounded in work): a request's whole work is bounded too. */
export const MAX_PAGES_PER_REQUEST = 16;

/** `page_token` of /authorized_users: where the last page ended. */
const pageToken = (next: string): string => Buffer.from(next, 'utf8').toString('base64url');
const afterToken = (token: string | undefined): string | undefined => (token ? Buffer.from(token, 'base64url').toString('utf8') : undefined);

/**
 * The Permit PDP's routes beyond `/allowed` that the SDKs call: the tenants a
 * check is allowed in, a user's tenants, who is authorized for an action, and
 * the local role assignments (`pdp_api` of the Python SDK).
 */
export function registerPermitPdpRoutes(app: TypedApp, d: PermitDeps): void {
  const { decider } = d;
  const tenantDetails = (key: string) => ({ key, attributes: (d.store.get('tenant', key)?.value.attributes as Record<string, unknown> | undefined) ?? {} });
  const parse = (c: CheckRequest): Check => {
    const n = normalizeCheck(c);
    if (!n.ok) throw new FactsyncError('invalid_request', n.error);
    return n.value;
  };
  const route = <B extends TSchema>(url: string, body: B, summary: string, handler: (body: Static<B>, reply: FastifyReply) => unknown | Promise<unknown>) =>
    app.post(url, { schema: { summary, tags: ['checks'], body, querystring: AtLeast } }, async (req, reply) => {
      await readAt(d, req, reply);
      return handler(req.body as Static<B>, reply);
    });

  route('/allowed/all-tenants', CheckRequest, 'The tenants in which the check is allowed (Permit)', async (body) => {
    const c = parse(body);
    decider.requireWhole('list the tenants in which a check is allowed');
    const found = await readAtOneVersion(d.gate, (pause) => pages((p) => decider.enumerate.tenants(c, p), pause));
    return { allowed_tenants: found.keys.map((t) => ({ allow: true, result: true, tenant: tenantDetails(t) })) };
  });

  route('/user-tenants', UserTenantsRequest, 'The tenants in which the user holds a role (Permit)', (body) => {
    decider.requireWhole('list every tenant a user holds a role in');
    return decider.enumerate.userTenants(normalizeUser(body.user).key).map(tenantDetails);
  });

  // One page of users (`limit`, at most 1,000); X-Next-Page-Token, sent back as `page_token`, continues it.
  route('/authorized_users', AuthorizedUsersRequest, 'The users who may do the action on the resource, with the roles that allow it (Permit)', async (b, reply) => {
    const c = parse({ user: '-', action: b.action, resource: b.resource });
    const tenant = decider.tenantOf(c);
    const resource = c.resource.key === undefined ? `${c.resource.type}:*` : `${c.resource.type}:${c.resource.key}`;
    const permission = `${c.resource.type}:${c.action}`;
    return readAtOneVersion(d.gate, async (pause) => {
      const page = await pages((p) => decider.enumerate.subjects(c, p), pause, b.limit ?? MAX_PAGE, afterToken(b.page_token));
      if (page.next !== null) void reply.header('x-next-page-token', pageToken(page.next));
      // Null prototype: a user called `__proto__` is a key like any other.
      const users: Record<string, { user: string; tenant: string; resource: string; role: string }[]> = Object.create(null) as Record<string, never>;
      for (const user of page.keys) {
        await pause();
        const byRole = [...decider.index.assignments.get(user)?.get(tenant) ?? []].filter((r) => decider.index.rolePermissions(r).has(permission))
          .map((role) => ({ user, tenant, resource: `__tenant:${tenant}`, role }));
        const onInstance = c.resource.key === undefined ? [] : decider.index.grantingRoles(c.resource.type, c.action)
          .filter((r) => decider.holds(user, `${resource}#${r}`, tenant)).map((role) => ({ user, tenant, resource, role }));
        // Allowed by a condition set rule alone: no role to name, an empty list.
        users[user] = [...onInstance, ...byRole];
      }
      return { resource, tenant, users };
    });
  });

  app.get('/local/role_assignments', {
    schema: { summary: 'Role assignments this PDP holds (Permit\'s local API)', tags: ['permit'], querystring: LocalAssignmentsQuery },
  }, async (req, reply) => {
    await readAt(d, req, reply);
    const q = req.query;
    const one = (x: string | undefined) => (x === undefined ? undefined : [x]);
    const f: AssignmentFilter = { user: one(q.user), role: one(q.role), tenant: one(q.tenant), resource: one(q.resource), resource_instance: one(q.resource_instance) };
    return paginate(assignmentsOf(d, f), { page: q.page, per_page: q.per_page ?? 30 }, (a) => ({
      user: a.user, role: a.role, tenant: a.tenant, ...(a.resource_instance ? { resource_instance: a.resource_instance } : {}),
    })).data;
  });
}
