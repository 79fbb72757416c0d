import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import { AGENT_ID_PATTERN, ENV_PATTERN, FactsyncError } from '@factsync/shared';
import { ROLES, mayUseEnv, type Principal } from '../roles.js';
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
    const narrower = mintProblem(p, { tenants, agentIds: agent_ids, expiresAtMs: Date.now() + ttl_seconds * 1000 });
    if (narrower) throw new FactsyncError('forbidden', narrower);
    const jwt = ctx.auth.jwt;
    if (!jwt?.canMint) throw new FactsyncError('not_found', 'this server does not mint tokens: start it with JWT_SECRET set (it then accepts and mints HS256 JWTs)');
    return jwt.mint({ role, envs, ...(agent_ids ? { agent_ids } : {}), ...(tenants ? { tenants } : {}) }, ttl_seconds);
  });
}

/** An agent-id pattern (exact, or a prefix ending in `*`) that `grant` covers. */
function covers(grant: string, asked: string): boolean {
  if (grant.endsWith('*')) return asked.startsWith(grant.slice(0, -1));
  return !asked.endsWith('*') && asked === grant;
}

/**
 * A minted token is never wider than the token that mints it (invariant 10):
 * no tenant, agent id or lifetime it does not have itself. Envs are checked
 * where the route reads them. Returns why not, or undefined.
 */
export function mintProblem(p: Principal, asked: { tenants?: readonly string[] | undefined; agentIds?: readonly string[] | undefined; expiresAtMs: number }): string | undefined {
  if (p.tenants) {
    if (!asked.tenants) return `this token is limited to tenants ${p.tenants.join(', ')}: a token it mints must be too (pass tenants, a subset of these)`;
    const outside = asked.tenants.filter((t) => !p.tenants!.includes(t));
    if (outside.length > 0) return `this token is limited to tenants ${p.tenants.join(', ')}: it cannot mint for ${outside.join(', ')}`;
  }
  if (p.agentIds) {
    if (!asked.agentIds) return `this token may connect only as ${p.agentIds.join(', ')}: a token it mints must name agent_ids within these`;
    const outside = asked.agentIds.filter((a) => !p.agentIds!.some((g) => covers(g, a)));
    if (outside.length > 0) return `this token may connect only as ${p.agentIds.join(', ')}: it cannot mint for ${outside.join(', ')}`;
  }
  if (p.expiresAtMs !== undefined && asked.expiresAtMs > p.expiresAtMs) {
    const most = Math.max(0, Math.floor((p.expiresAtMs - Date.now()) / 1000));
    return `this token expires at ${new Date(p.expiresAtMs).toISOString()}: a token it mints may live at most ${most} s (ttl_seconds)`;
  }
  return undefined;
}
