import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import { FactsyncError } from '@factsync/shared';
import { mayUseEnv } from '../auth.js';
import { EnvParams, ErrorBody } from './schemas.js';
import type { RouteContext } from './context.js';

/** Most names `GET /v1/envs` lists. */
const MAX_LISTED = 1000;

/** `POST /v1/envs/:env` creates an env (admin); `GET /v1/envs` lists those that exist and the token may read. */
export function envRoutes(app: TypedApp, ctx: RouteContext): void {
  app.post('/v1/envs/:env', {
    schema: {
      summary: 'Create an env (admin): 201 when created, 200 when it already existed',
      params: EnvParams,
      response: { 200: Type.Object({ env: Type.String(), created: Type.Boolean() }), 201: Type.Object({ env: Type.String(), created: Type.Boolean() }), '4xx': ErrorBody },
    },
  }, async (req, reply) => {
    const p = await ctx.auth.authenticate(req.headers.authorization);
    const { env } = req.params;
    if (p.role !== 'admin') throw new FactsyncError('forbidden', `a ${p.role} token cannot create envs: use an admin token`);
    if (!mayUseEnv(p, env)) throw new FactsyncError('forbidden', `this admin token is for env${p.envs.length === 1 ? '' : 's'} ${[...p.envs].map((e) => `"${e}"`).join(', ')}, not "${env}"`);
    const created = await ctx.envs.create(env);
    if (created) req.log.info({ env }, 'env created');
    return reply.code(created ? 201 : 200).send({ env, created });
  });

  app.get('/v1/envs', {
    schema: { summary: 'The envs that exist and this token may read', response: { 200: Type.Object({ envs: Type.Array(Type.String()) }), '4xx': ErrorBody } },
  }, async (req) => {
    const p = await ctx.auth.authenticate(req.headers.authorization);
    const all = await ctx.store.envs(MAX_LISTED);
    return { envs: p.envs === '*' ? all : all.filter((e) => mayUseEnv(p, e)) };
  });
}
