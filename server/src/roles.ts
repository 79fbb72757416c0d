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

/** Throws 403 unless a token bound to agent ids (token=agent:env:ids, JWT agent_ids) may connect as `agentId`. */
export function permitAgentId(p: Principal, agentId: string): void {
  if (!p.agentIds) return;
  const ok = p.agentIds.some((a) => (a.endsWith('*') ? agentId.startsWith(a.slice(0, -1)) : agentId === a));
  if (!ok) throw new FactsyncError('forbidden', `this token may only connect as agent ${p.agentIds.join(', ')}, not "${agentId}"`);
}
