import { FactsyncError } from '@factsync/shared';

export const ROLES = ['admin', 'writer', 'agent', 'reader'] as const;
export type Role = (typeof ROLES)[number];
export type Capability = 'read' | 'write' | 'ack' | 'subscribe';

/** Who a request or socket is, whichever kind of token it showed (a static one or a JWT). */
export interface Principal {
  role: Role;
  /** The envs it may use: '*' for every env. */
  envs: '*' | readonly string[];
  /** For per-token limits: a number derived from the token (not secret, stable while the token is). */
  tokenIndex: number;
  /** The agent ids it may connect as (each exact, or a prefix ending in '*'); absent = any. */
  agentIds?: readonly string[];
  /** The tenants a scoped agent with this token may ask for (JWT `tenants`); absent = any. */
  tenants?: readonly string[];
  /** When the token stops being valid (JWT `exp`): a websocket is closed then (4401 token_expired). */
  expiresAtMs?: number;
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

export const mayUseEnv = (p: Pick<Principal, 'envs'>, env: string): boolean => p.envs === '*' || p.envs.includes(env);

/** Throws 403 unless the principal may use `cap` on `env`. */
export function permit(p: Principal, env: string, cap: Capability): Principal {
  if (!mayUseEnv(p, env)) {
    const envs = p.envs as readonly string[];
    throw new FactsyncError('forbidden', `this token is for env${envs.length === 1 ? '' : 's'} ${envs.map((e) => `"${e}"`).join(', ')}, not "${env}"`);
  }
  if (!CAN[p.role].has(cap)) {
    const what = { read: 'read', write: 'write facts', ack: 'connect as an acking agent', subscribe: 'subscribe' }[cap];
    throw new FactsyncError('forbidden', `a ${p.role} token cannot ${what}`);
  }
  return p;
}

const quoted = (xs: readonly string[]): string => xs.map((x) => `"${x}"`).join(', ');

/**
 * Throws 403 when the token is limited to some tenants (JWT `tenants`) and the
 * request would show every tenant's facts: a whole snapshot, the change log, a
 * whole-env websocket, a fact or a scan outside its tenants. Secure by default:
 * until scoped sessions exist (a hello with `tenants`), such a token reads only
 * scans of its own tenants.
 */
export function permitAllTenants(p: Principal, what: string): void {
  if (!p.tenants) return;
  throw new FactsyncError('forbidden', `this token is limited to tenant${p.tenants.length === 1 ? '' : 's'} ${quoted(p.tenants)}: it cannot ${what}, which shows every tenant's facts; use a token without a tenants claim, or read with ?tenant=`);
}

/** Throws 403 unless the token may read facts of `tenant` (any, without a `tenants` claim). */
export function permitTenant(p: Principal, tenant: string | undefined, what: string): void {
  if (!p.tenants) return;
  if (tenant === undefined) return permitAllTenants(p, what);
  if (!p.tenants.includes(tenant)) throw new FactsyncError('forbidden', `this token is limited to tenant${p.tenants.length === 1 ? '' : 's'} ${quoted(p.tenants)}, not "${tenant}"`);
}

/**
 * Throws 403 unless the token may follow the share of `tenants` (the whole env
 * when undefined): a token limited to tenants may follow a share of them, which
 * holds their facts and the facts of no tenant their checks need.
 */
export function permitScope(p: Principal, tenants: readonly string[] | undefined, what: string): void {
  if (!tenants) return permitAllTenants(p, `${what} on the whole env (name your tenants: AGENT_TENANTS, hello.tenants or ?tenants=)`);
  for (const t of tenants) permitTenant(p, t, what);
}

/** Throws 403 unless a token bound to agent ids (token=agent:env:ids, JWT agent_ids) may connect as `agentId`. */
export function permitAgentId(p: Principal, agentId: string): void {
  if (!p.agentIds) return;
  const ok = p.agentIds.some((a) => (a.endsWith('*') ? agentId.startsWith(a.slice(0, -1)) : agentId === a));
  if (!ok) throw new FactsyncError('forbidden', `this token may only connect as agent ${p.agentIds.join(', ')}, not "${agentId}"`);
}
