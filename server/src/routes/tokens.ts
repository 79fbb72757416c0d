import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import { AGENT_ID_PATTERN, ENV_PATTERN, FactsyncError } from '@factsync/shared';
import { ROLES, mayUseEnv } from '../roles.js';
import { ErrorBody } from './schemas.js';
import type { RouteContext } from './context.js';

/** Longest a minted token lives: 30 days (rotate rather than mint forever). */
const MAX_TTL_SECONDS = 30 * 24 * 3600;

/** `POST /v1/tokens`: an admin mints a JWT (HS256, JWT_SECRET) for an agent, a writer or a reader. */
export function tokenRoutes(app: TypedApp, ctx: RouteContext): void {
  app.post('/v1/tokens', {
    schema: {
      summary: 'Mint a JWT (admin; needs JWT_SECRET on the server)',
      body: Type.Object({
        role: Type.Union(ROLES.map((r) => Type.Literal(r)), { description: 'admin, writer, agent or reader' }),
        envs: Type.Array(Type.String({ pattern: `${ENV_PATTERN}|^\\*$`, description: 'an env name, or * for every env' }), { minItems: 1, maxItems: 1000 }),
        agent_ids: Type.Optional(Type.Array(Type.String({ pattern: AGENT_ID_PATTERN.replace('$', '\\*?$'), description: 'an agent id, or a prefix ending in *' }), { minItems: 1, maxItems: 1000 })),
        tenants: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: 10_000 })),
        ttl_seconds: Type.Integer({ minimum: 1, maximum: MAX_TTL_SECONDS, description: `lifetime in seconds, at most ${MAX_TTL_SECONDS}` }),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ token: Type.String(), expires_at: Type.String({ format: 'date-time' }) }), '4xx': ErrorBody },
    },
  }, async (req) => {
    const p = await ctx.auth.authenticate(req.headers.authorization);
    if (p.role !== 'admin') throw new FactsyncError('forbidden', `a ${p.role} token cannot mint tokens: use an admin token`);
    const { role, envs, agent_ids, tenants, ttl_seconds } = req.body;
    // An admin of some envs mints for those envs only.
    const outside = envs.filter((e) => (e === '*' ? p.envs !== '*' : !mayUseEnv(p, e)));
    if (outside.length > 0) throw new FactsyncError('forbidden', `this token may not mint for ${outside.map((e) => `"${e}"`).join(', ')}: it is for ${p.envs === '*' ? 'every env' : p.envs.join(', ')}`);
    const jwt = ctx.auth.jwt;
    if (!jwt?.canMint) throw new FactsyncError('not_found', 'this server does not mint tokens: start it with JWT_SECRET set (it then accepts and mints HS256 JWTs)');
    return jwt.mint({ role, envs, ...(agent_ids ? { agent_ids } : {}), ...(tenants ? { tenants } : {}) }, ttl_seconds);
  });
}
