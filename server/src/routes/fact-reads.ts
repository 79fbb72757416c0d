import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import { Fact, FactKey, FactType, FactsyncError } from '@factsync/shared';
import { factJson } from '../ws/frames.js';
import type { RawFact } from '../store/fact-store.js';
import { ScanCursorGone } from '../store/memory-scans.js';
import { EnvParams, ErrorBody } from './schemas.js';
import { requireCap, sendJsonText, type RouteContext } from './context.js';
import { permitTenant } from '../roles.js';

const Epoch = Type.Union([Type.String(), Type.Null()]);
/** Most scan steps one page may take before it answers (a filter that matches little must not hold a request open). */
const MAX_STEPS_PER_PAGE = 64;

/**
 * Reads of the server's state without a whole snapshot: one fact, and a
 * scope (a type, optionally one tenant) in pages. What the command-line
 * client's get, export and reconcile use: a scope of a million facts is read
 * one page at a time, so neither side holds the env.
 */
export function factReadRoutes(app: TypedApp, ctx: RouteContext): void {
  const read = requireCap(ctx, 'read');

  app.get('/v1/envs/:env/facts/:type/:key', {
    onRequest: read,
    schema: {
      summary: 'One fact of the server\'s state, with the version it was read at',
      params: Type.Object({ env: EnvParams.properties.env, type: FactType, key: FactKey }),
      response: { 200: Type.Object({ type: Type.String(), key: Type.String(), value: Type.Unknown(), version: Type.Integer() }), '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req, reply) => {
    const { env, type, key } = req.params;
    const f = await ctx.store.fact(env, type, key);
    if (f.valueJson === null) throw new FactsyncError('not_found', `no ${type} "${key}" in env "${env}" at version ${f.version}`);
    // A token limited to tenants reads a fact only when its value names one of them.
    if (req.principal!.tenants) permitTenant(req.principal!, tenantOfValue(f.valueJson), `read ${type} "${key}" (it belongs to no tenant)`);
    return sendJsonText(reply, `{"type":${JSON.stringify(type)},"key":${JSON.stringify(key)},"value":${f.valueJson},"version":${f.version}}`);
  });

  app.get('/v1/envs/:env/facts', {
    onRequest: read,
    schema: {
      summary: 'A page of the state, optionally of one type and one tenant (a fuzzy scan: see docs/api.md)',
      params: EnvParams,
      querystring: Type.Object({
        type: Type.Optional(FactType),
        tenant: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'only facts whose value has this `tenant`' })),
        cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,20}$', description: 'next_cursor of the previous page; absent for the first' })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 1000, description: 'facts per page: at most this on the embedded store, about this on Redis (SCAN counts are hints)' })),
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          version: Type.Integer({ description: 'the head when the page was read (after its scan step)' }),
          epoch: Epoch,
          id: Type.String(),
          count: Type.Integer({ description: 'facts in the whole env at `version`' }),
          facts: Type.Array(Fact),
          next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
        }),
        '4xx': ErrorBody, '5xx': ErrorBody,
      },
    },
  }, async (req, reply) => {
    const { env } = req.params;
    const { type, tenant, limit = 1000 } = req.query;
    if (tenant !== undefined && type === undefined) {
      throw new FactsyncError('invalid_request', 'tenant filters a type: add type=… (e.g. type=role_assignment&tenant=acme)');
    }
    permitTenant(req.principal!, tenant, 'scan without ?tenant=');
    const maxBytes = 4 * ctx.config.wsMaxFrameBytes;
    let cursor = req.query.cursor ?? '0';
    const out: string[] = [];
    let bytes = 0;
    for (let step = 0; step < MAX_STEPS_PER_PAGE && out.length < limit && bytes < maxBytes; step++) {
      const s = await ctx.store.scanState(env, cursor, limit - out.length, type).catch((e: unknown) => {
        if (e instanceof ScanCursorGone) throw new FactsyncError('invalid_request', `cursor ${cursor} is not an open scan (it expired, or was not a next_cursor of this server); start again without a cursor`);
        throw e;
      });
      cursor = s.cursor;
      for (const f of s.facts) {
        if (!inScope(f, type, tenant)) continue;
        const j = factJson(f);
        out.push(j);
        bytes += j.length;
      }
      if (cursor === '0') break;
    }
    const h = await ctx.store.headWithCount(env);
    return sendJsonText(reply, `{"version":${h.version},"epoch":${JSON.stringify(h.epoch)},"id":${JSON.stringify(h.id)},"count":${h.facts},`
      + `"facts":[${out.join(',')}],"next_cursor":${cursor === '0' ? 'null' : JSON.stringify(cursor)}}`);
  });

  app.get('/v1/limits', {
    schema: {
      summary: 'What one write may carry on this server (clients size their writes from it)',
      response: { 200: Type.Object({ max_ops_per_write: Type.Integer(), body_limit_bytes: Type.Integer(), log_retention: Type.Integer(), store: Type.String() }), '4xx': ErrorBody },
    },
  }, async (req) => {
    await ctx.auth.authenticate(req.headers.authorization);
    return { max_ops_per_write: ctx.config.maxOpsPerWrite, body_limit_bytes: ctx.config.bodyLimitBytes, log_retention: ctx.config.logRetention, store: ctx.store.kind };
  });
}

/** The store filters by type (a prefix of the field); the tenant is in the value. */
function inScope(f: RawFact, type: string | undefined, tenant: string | undefined): boolean {
  if (type !== undefined && f.type !== type) return false;
  if (tenant === undefined) return true;
  // Cheap refusal first: a value that does not contain the tenant's JSON text cannot name it.
  if (!f.valueJson.includes(JSON.stringify(tenant).slice(1, -1))) return false;
  return tenantOfValue(f.valueJson) === tenant;
}

/** The `tenant` a stored value names, or undefined. */
function tenantOfValue(valueJson: string): string | undefined {
  const v = JSON.parse(valueJson) as { tenant?: unknown } | null;
  return v && typeof v === 'object' && typeof v.tenant === 'string' ? v.tenant : undefined;
}
