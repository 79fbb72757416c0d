import { WELL_KNOWN_TYPES, type Change, type Fact, type Op } from './facts.js';
import { err, ok, type Result } from './result.js';

/** Most tenants one scoped agent or subscription may name. */
export const MAX_SCOPE_TENANTS = 1000;
/** A tenant key as a scope names it: what a tenant fact's key may be, without a comma (scopes are comma lists). */
export const SCOPE_TENANT_PATTERN = '^[^,\\s]{1,170}$';
const tenantRe = new RegExp(SCOPE_TENANT_PATTERN);
/** A comma list of tenant keys, as `?tenants=` takes it. */
export const TENANTS_LIST_PATTERN = `^[^,\\s]{1,170}(,[^,\\s]{1,170}){0,${MAX_SCOPE_TENANTS - 1}}$`;

/**
 * What a scoped agent or subscription receives of each version: the ops of
 * its tenants (and of no tenant), of its types. Either may be absent (all).
 * `key` is canonical: sessions with the same key share one computed share.
 */
export interface Scope {
  readonly tenants?: ReadonlySet<string>;
  readonly types?: ReadonlySet<string>;
  readonly key: string;
}

const sorted = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();

/** The scope of a hello or a query; undefined when it names neither tenants nor types (the whole env). */
export function scopeOf(s: { tenants?: readonly string[] | undefined; types?: readonly string[] | undefined }): Scope | undefined {
  if (!s.tenants && !s.types) return undefined;
  const tenants = s.tenants ? sorted(s.tenants) : undefined;
  const types = s.types ? sorted(s.types) : undefined;
  return {
    ...(tenants ? { tenants: new Set(tenants) } : {}),
    ...(types ? { types: new Set(types) } : {}),
    key: `tenants=${tenants?.join(',') ?? '*'};types=${types?.join(',') ?? '*'}`,
  };
}

/** A comma list of tenant keys (`AGENT_TENANTS`, `?tenants=`): each checked, without repeats, at most MAX_SCOPE_TENANTS. */
export function parseTenantsList(text: string): Result<string[]> {
  const tenants = [...new Set(text.split(',').map((t) => t.trim()).filter(Boolean))];
  const bad = tenants.find((t) => !tenantRe.test(t));
  if (bad !== undefined) return err(`"${bad}" is not a tenant key (1-170 characters, no comma or space)`);
  if (tenants.length === 0) return err('name at least one tenant');
  if (tenants.length > MAX_SCOPE_TENANTS) return err(`${tenants.length} tenants; at most ${MAX_SCOPE_TENANTS}`);
  return ok(tenants);
}

const WELL_KNOWN = new Set(WELL_KNOWN_TYPES);
/** Types whose tenant is part of their key: an upsert can never move such a fact to another tenant. */
const KEYED_BY_TENANT = new Set(['tenant', 'role_assignment']);

/**
 * The tenant a fact belongs to, from the fact alone (docs/architecture.md,
 * "Scoped agents"): a `tenant` fact is its own; role assignments, resource
 * instances and relationship tuples with a `tenant` name theirs; a fact of a
 * type that is not well-known belongs to the tenant its value names in
 * `tenant`. Everything else (users, policy, tuples without a tenant,
 * attribute facts) belongs to no tenant: every scope holds it.
 */
export function tenantOfFact(type: string, key: string, value: unknown): string | undefined {
  if (type === 'tenant') return key;
  if (tenantInValue(type)) {
    const t = (value as { tenant?: unknown } | null)?.tenant;
    return typeof t === 'string' ? t : undefined;
  }
  return undefined;
}

/** Whether a fact of `type` names its tenant in its value (so a reader of stored JSON must parse it to route it). */
export const tenantInValue = (type: string): boolean =>
  type === 'role_assignment' || type === 'resource_instance' || type === 'relationship' || !WELL_KNOWN.has(type);

/** The tenant a fact belongs to when its key says it (a tenant, a role assignment); undefined when only its value can say. */
export function tenantOfKey(type: string, key: string): string | undefined {
  if (type === 'tenant') return key;
  if (type === 'role_assignment') return key.slice(key.lastIndexOf('/') + 1);
  return undefined;
}

/**
 * Whether the store records where a fact of `type` was before an op on it
 * (Change.was): its tenant is in its value, and the value may name another
 * (a resource instance, a tuple, a custom fact).
 */
export const recordsPrior = (type: string): boolean => tenantInValue(type) && !KEYED_BY_TENANT.has(type);

/** Where a fact was before an op (Change.was): `absent`, there was none; `tenant: null`, it named no tenant; `unknown`, not recorded. */
export type Prior = { tenant: string | null } | 'absent' | 'unknown';

/** The prior of op `i` of `change` for a type that records it; for other types, unknown (`'unknown'`). */
export function priorOf(change: Pick<Change, 'was'>, i: number, type: string): Prior {
  if (!recordsPrior(type)) return 'unknown';
  const was = change.was;
  if (!was || !Object.hasOwn(was, String(i))) return 'absent';
  return { tenant: was[String(i)] ?? null };
}

/**
 * What `scope` receives of one op, or undefined. A fact goes where its tenant
 * is served (a fact of no tenant everywhere). A delete, and an upsert that moved
 * a fact to another tenant, reach exactly the scopes that held it before: its
 * tenant's, as the key says or the store recorded (`prior`), or every scope when
 * it named no tenant. So a share never carries another tenant's key, and a
 * fact that moved away is removed where it was. Without a record (`'unknown'`)
 * a delete goes everywhere, which is harmless, and a move likewise.
 */
export function opForScope(op: Op, scope: Scope, prior: Prior = 'unknown'): Op | undefined {
  if (scope.types && !scope.types.has(op.type)) return undefined;
  if (!scope.tenants) return op;
  const tenants = scope.tenants;
  const now = op.op === 'upsert' ? tenantOfFact(op.type, op.key, op.value) : tenantOfKey(op.type, op.key);
  if (op.op === 'upsert' && (now === undefined || tenants.has(now))) return op;
  if (op.op === 'delete' && now !== undefined) return tenants.has(now) ? op : undefined;
  if (op.op === 'upsert' && KEYED_BY_TENANT.has(op.type)) return undefined;
  // A delete that its key cannot route, or an upsert to a tenant this scope does not serve: where was it?
  const heldHere = prior === 'unknown' ? true : prior === 'absent' ? false : prior.tenant === null || tenants.has(prior.tenant);
  return heldHere ? { op: 'delete', type: op.type, key: op.key } : undefined;
}

/** Whether a stored fact belongs to `scope`'s share (snapshots of a share). */
export function factInScope(f: Pick<Fact, 'type' | 'key' | 'value'>, scope: Scope): boolean {
  if (scope.types && !scope.types.has(f.type)) return false;
  if (!scope.tenants) return true;
  const t = tenantOfFact(f.type, f.key, f.value);
  return t === undefined || scope.tenants.has(t);
}

/**
 * A change as `scope` receives it: the same version, id and time, only its
 * share of the ops (possibly none: every version still travels, so versions
 * stay contiguous), and `prev`, the id of the version before. A receiver
 * cannot recompute the chain id over ops it did not get, so it checks the
 * link instead (invariant 9 on a share; chain.ts followsHistory).
 */
export function shareOfChange(change: Change, prevId: string, scope: Scope): Change {
  const ops: Op[] = [];
  for (let i = 0; i < change.ops.length; i++) {
    const o = change.ops[i]!;
    const s = opForScope(o, scope, priorOf(change, i, o.type));
    if (s) ops.push(s);
  }
  return { version: change.version, id: change.id, prev: prevId, ts: change.ts, ops };
}

/** Whether a tenant is served by an agent holding `tenants` (undefined: the whole env). */
export const serves = (tenants: ReadonlySet<string> | undefined, tenant: string): boolean => !tenants || tenants.has(tenant);


