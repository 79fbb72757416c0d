import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import { Change, Fact, FactsyncError, SourcesReply, GENESIS_ID, TENANTS_LIST_PATTERN, TYPES_LIST_PATTERN, idOfChangeJson, parseTenantsList, scopeOf } from '@factsync/shared';
import { shareChanges } from '../ws/shares.js';
import { factsJson } from '../ws/frames.js';
import { EnvParams, ErrorBody } from './schemas.js';
import { requireCap, sendJsonText, type RouteContext } from './context.js';
import { permitAllTenants, permitScope } from '../roles.js';

const Epoch = Type.Union([Type.String(), Type.Null()]);

/** head, snapshot and changes. Snapshot and changes are assembled from stored JSON text. */
export function readRoutes(app: TypedApp, ctx: RouteContext): void {
  const read = requireCap(ctx, 'read');

  app.get('/v1/envs/:env/head', {
    onRequest: read,
    schema: {
      summary: 'Current version of an env',
      params: EnvParams,
      response: { 200: Type.Object({ version: Type.Integer(), epoch: Epoch, id: Type.String({ description: 'chain id of the head version' }) }), '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req) => {
    const { env } = req.params;
    return ctx.store.head(env);
  });

  app.get('/v1/envs/:env/sources', {
    onRequest: read,
    schema: {
      summary: 'Where each source is: the position the server recorded with its last write',
      params: EnvParams,
      response: { 200: SourcesReply, '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req) => {
    const records = await ctx.store.sources(req.params.env);
    return records.map((r) => ({ name: r.name, position: r.position, version: r.version, updated_at: r.updatedAt }));
  });

  app.get('/v1/envs/:env/snapshot', {
    onRequest: read,
    schema: {
      summary: 'All facts of an env at one consistent version',
      params: EnvParams,
      response: { 200: Type.Object({ version: Type.Integer(), epoch: Epoch, id: Type.String(), facts: Type.Array(Fact) }), '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req, reply) => {
    const { env } = req.params;
    permitAllTenants(req.principal!, 'read the snapshot');
    const snap = await ctx.snapshots.whole(env);
    // Raw text: a million facts are never parsed into objects and re-serialised.
    return sendJsonText(reply, `{"version":${snap.version},"epoch":${JSON.stringify(snap.epoch)},"id":${JSON.stringify(snap.id)},"facts":[${factsJson(snap)}]}`);
  });

  app.get('/v1/envs/:env/changes', {
    onRequest: read,
    schema: {
      summary: 'Changes after a version, in order',
      params: EnvParams,
      querystring: Type.Object({
        after: Type.Integer({ minimum: 0, description: 'return versions greater than this' }),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 })),
        types: Type.Optional(Type.String({
          pattern: TYPES_LIST_PATTERN,
          description: 'only ops of these fact types (a comma list, at most 32); every version still comes, each with `prev`, the id of the version before',
        })),
        tenants: Type.Optional(Type.String({
          pattern: TENANTS_LIST_PATTERN,
          description: 'only the share of these tenants (a comma list): their facts and the facts of no tenant; every version still comes, each with `prev`',
        })),
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({ head: Type.Integer(), epoch: Epoch, changes: Type.Array(Change) }),
        '4xx': ErrorBody, '5xx': ErrorBody,
      },
    },
  }, async (req, reply) => {
    const { env } = req.params;
    const q = req.query;
    const tenants = q.tenants === undefined ? undefined : parsedTenants(q.tenants);
    permitScope(req.principal!, tenants, 'read the change log');
    const scope = scopeOf({ tenants, types: q.types?.split(',') });
    // A share links its first change to version `after`, whose id is read with the page (one more change).
    const extra = scope && q.after > 0 ? 1 : 0;
    // Bounded in bytes as well as in count: a page of huge changes is never built as one huge string.
    const page = await ctx.store.changes(env, q.after - extra, (q.limit ?? 1000) + extra, 16 * ctx.config.wsMaxFrameBytes);
    if (page.truncated || (extra && page.changes.length > 0 && page.changes[0]!.version !== q.after)) {
      throw new FactsyncError('log_truncated', `the change log no longer holds version ${q.after + 1 - extra} (head is ${page.head}); load a snapshot instead`, { head: page.head });
    }
    let changes = `[${page.changes.map((c) => c.json).join(',')}]`;
    if (scope) {
      const [prevId, rest] = extra && page.changes.length > 0 ? [idOfChangeJson(page.changes[0]!.json) ?? '', page.changes.slice(1)] : [GENESIS_ID, page.changes];
      changes = shareChanges(rest, prevId, scope).json;
    }
    return sendJsonText(reply, `{"head":${page.head},"epoch":${JSON.stringify(page.epoch)},"changes":${changes}}`);
  });
}

/** `?tenants=`, already matched against TENANTS_LIST_PATTERN by the route schema; the one parse of a tenants list. */
function parsedTenants(text: string): string[] {
  const t = parseTenantsList(text);
  if (!t.ok) throw new FactsyncError('invalid_request', `tenants: ${t.error}`);
  return t.value;
}
