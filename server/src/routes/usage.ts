import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import { USAGE_MONTH_PATTERN, usageMonth } from '@factsync/shared';
import { EnvParams, ErrorBody } from './schemas.js';
import { requireCap, type RouteContext } from './context.js';

/** Monthly active users (docs/api.md, "Decisions on the agent": usage): distinct user keys checked on any agent of the env in a UTC month. */
export function usageRoutes(app: TypedApp, ctx: RouteContext): void {
  app.get('/v1/envs/:env/usage', {
    onRequest: requireCap(ctx, 'read'),
    schema: {
      summary: 'Monthly active users of an env',
      params: EnvParams,
      querystring: Type.Object({
        month: Type.Optional(Type.String({ pattern: USAGE_MONTH_PATTERN, description: 'UTC month YYYY-MM, e.g. 2026-11 (default: the current month)' })),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ env: Type.String(), month: Type.String(), mau: Type.Integer() }), '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req) => {
    const { env } = req.params;
    const month = req.query.month ?? usageMonth(Date.now());
    return { env, month, mau: await ctx.store.usage(env, month) };
  });
}
