import type { TokenClaims } from '@factsync/sdk';
import { UsageError, printJson, writeOut, type CliContext } from '../context.js';

const ROLES = ['admin', 'writer', 'agent', 'reader'];
const list = (s: string | undefined): string[] | undefined => s?.split(',').map((x) => x.trim()).filter(Boolean);

/** `token create`: asks the server to mint a JWT (POST /v1/tokens, admin, JWT_SECRET on the server). */
export async function tokenCreate(c: CliContext, o: { role?: string; envs?: string; agentIds?: string; tenants?: string; ttl?: string }): Promise<void> {
  if (!o.role || !ROLES.includes(o.role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
  const envs = list(o.envs);
  if (!envs?.length) throw new UsageError('--envs needs one or more envs, comma-separated (* = every env)');
  const ttl = o.ttl === undefined ? 3600 : Number(o.ttl);
  if (!Number.isInteger(ttl) || ttl < 1) throw new UsageError(`--ttl ${o.ttl} is not a number of seconds ≥ 1`);
  const claims: TokenClaims = { role: o.role as TokenClaims['role'], envs, ttl_seconds: ttl };
  const agentIds = list(o.agentIds);
  const tenants = list(o.tenants);
  if (agentIds) claims.agent_ids = agentIds;
  if (tenants) claims.tenants = tenants;
  // A server without JWT_SECRET answers 404 with a sentence saying so: it is printed as it is.
  const t = await c.server.mintToken(claims);
  if (c.json) return printJson(c, t);
  await writeOut(c.out, `${t.token}\n`);
  c.err.write(`expires at ${t.expires_at}\n`);
}
