import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError, ENV_PATTERN, FactsyncError } from '@factsync/shared';

export const ROLES = ['admin', 'writer', 'agent', 'reader'] as const;
export type Role = (typeof ROLES)[number];
export type Capability = 'read' | 'write' | 'ack' | 'subscribe';

export interface TokenGrant {
  digest: Buffer;
  role: Role;
  /** An env name, or '*' for every env. */
  env: string;
  /** Optional third part: the agent ids this token may connect as (exact, or a prefix ending in '*'). */
  agentIds?: string;
}

export interface Principal {
  role: Role;
  env: string;
  /** Which configured token this is (its index), for per-token limits; not secret. */
  tokenIndex: number;
  agentIds?: string;
  /** A short non-secret label for logs. */
  label: string;
}

/** The role table of docs/api.md, "Server HTTP API". */
const CAN: Record<Role, ReadonlySet<Capability>> = {
  admin: new Set(['read', 'write', 'ack', 'subscribe']),
  writer: new Set(['read', 'write']),
  agent: new Set(['read', 'write', 'ack', 'subscribe']),
  reader: new Set(['read', 'subscribe']),
};

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();
const envRe = new RegExp(ENV_PATTERN);

/** `token=role:env,token=role:env`. */
export function parseTokens(raw: string): TokenGrant[] {
  const grants: TokenGrant[] = [];
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = entry.lastIndexOf('=');
    const token = eq > 0 ? entry.slice(0, eq) : '';
    const [role, env, agentIds, ...rest] = (eq > 0 ? entry.slice(eq + 1) : '').split(':');
    const shown = token ? `${token.slice(0, 3)}…` : '(empty)';
    if (!token || rest.length > 0 || !role || !env || agentIds === '') {
      throw new ConfigError(`AUTH_TOKENS entry for token ${shown} is invalid: write token=role:env or token=agent:env:agent-id (a trailing * matches a prefix), e.g. s3cret=agent:prod`);
    }
    if (agentIds !== undefined && !/^[A-Za-z0-9_.@-]+\*?$|^\*$/.test(agentIds)) {
      throw new ConfigError(`AUTH_TOKENS entry for token ${shown}: agent ids "${agentIds}" must be an agent id or a prefix ending in *`);
    }
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new ConfigError(`AUTH_TOKENS entry for token ${shown}: role "${role}" is unknown; use ${ROLES.join(', ')}`);
    }
    if (env !== '*' && !envRe.test(env)) {
      throw new ConfigError(`AUTH_TOKENS entry for token ${shown}: env "${env}" must be * or match ${ENV_PATTERN}`);
    }
    grants.push({ digest: sha256(token), role: role as Role, env, ...(agentIds !== undefined && agentIds !== '*' ? { agentIds } : {}) });
  }
  return grants;
}

export interface Authenticator {
  authenticate(authorization: string | undefined): Principal;
  authorize(authorization: string | undefined, env: string, cap: Capability): Principal;
}

/** Throws 403 unless the principal may use `cap` on `env`. */
export function permit(p: Principal, env: string, cap: Capability): Principal {
  if (p.env !== '*' && p.env !== env) {
    throw new FactsyncError('forbidden', `this token is for env "${p.env}", not "${env}"`);
  }
  if (!CAN[p.role].has(cap)) {
    const what = { read: 'read', write: 'write facts', ack: 'connect as an acking agent', subscribe: 'subscribe' }[cap];
    throw new FactsyncError('forbidden', `a ${p.role} token cannot ${what}`);
  }
  return p;
}

/** Throws 403 unless a token bound to agent ids (token=agent:env:ids) may connect as `agentId`. */
export function permitAgentId(p: Principal, agentId: string): void {
  if (!p.agentIds) return;
  const ok = p.agentIds.endsWith('*') ? agentId.startsWith(p.agentIds.slice(0, -1)) : agentId === p.agentIds;
  if (!ok) throw new FactsyncError('forbidden', `this token may only connect as agent ${p.agentIds}, not "${agentId}"`);
}

/** `unknownTokenHint`: where a rejected token's owner finds the right one (npm start names its dev token file). */
export function createAuthenticator(grants: readonly TokenGrant[], unknownTokenHint = 'check AUTH_TOKENS on the server'): Authenticator {
  function authenticate(authorization: string | undefined): Principal {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) throw new FactsyncError('unauthorized', 'missing bearer token: send Authorization: Bearer <token>');
    // Compare digests of equal length against every grant, without an early exit.
    const digest = sha256(m[1]!);
    let found = -1;
    grants.forEach((g, i) => {
      if (timingSafeEqual(g.digest, digest) && found < 0) found = i;
    });
    const g = grants[found];
    if (!g) throw new FactsyncError('unauthorized', `unknown token: ${unknownTokenHint}`);
    return { role: g.role, env: g.env, tokenIndex: found, label: `${g.role}:${g.env}`, ...(g.agentIds ? { agentIds: g.agentIds } : {}) };
  }
  return {
    authenticate,
    authorize: (authorization, env, cap) => permit(authenticate(authorization), env, cap),
  };
}
