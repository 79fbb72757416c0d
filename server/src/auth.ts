import { FactsyncError } from '@factsync/shared';
import { permit, type Capability, type Principal } from './roles.js';
import { StaticTokens, type TokenGrant } from './static-tokens.js';
import type { JwtVerifier } from './jwt.js';

export { ROLES, permit, permitAgentId, permitAllTenants, permitScope, permitTenant, mayUseEnv, type Role, type Capability, type Principal } from './roles.js';
export { parseTokens, StaticTokens, type TokenGrant } from './static-tokens.js';

export interface Authenticator {
  authenticate(authorization: string | undefined): Promise<Principal>;
  authorize(authorization: string | undefined, env: string, cap: Capability): Promise<Principal>;
  /** Mints JWTs (POST /v1/tokens); undefined without JWT_SECRET. */
  readonly jwt: JwtVerifier | undefined;
}

const fromGrant = (g: TokenGrant): Principal => ({
  role: g.role, envs: g.env === '*' ? '*' : [g.env], tokenIndex: g.digest.readUIntBE(0, 6), label: `${g.role}:${g.env}`,
  ...(g.agentIds ? { agentIds: [g.agentIds] } : {}),
});

/**
 * A bearer token → who it is: a static token (AUTH_TOKENS, AUTH_TOKENS_FILE)
 * first, then, when the server accepts JWTs, a JWT. `unknownTokenHint`: where
 * a rejected token's owner finds the right one (npm start names its dev token file).
 */
export function createAuthenticator(tokens: StaticTokens | readonly TokenGrant[], unknownTokenHint = 'check AUTH_TOKENS on the server', jwt?: JwtVerifier): Authenticator {
  const statics = tokens instanceof StaticTokens ? tokens : new StaticTokens(tokens, undefined);
  async function authenticate(authorization: string | undefined): Promise<Principal> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) throw new FactsyncError('unauthorized', 'missing bearer token: send Authorization: Bearer <token>');
    const token = m[1]!;
    const g = statics.find(token);
    if (g) return fromGrant(g);
    if (jwt?.looksLikeJwt(token)) return jwt.verify(token);
    throw new FactsyncError('unauthorized', `unknown token: ${unknownTokenHint}`);
  }
  return {
    authenticate,
    authorize: async (authorization, env, cap) => permit(await authenticate(authorization), env, cap),
    jwt,
  };
}
