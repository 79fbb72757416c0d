import { FactsyncError, tenantInValue, tenantOfKey, type Check } from '@factsync/shared';
import type { LocalStore } from '../local-store.js';
import { Enumerator } from './enumerate.js';
import { Evaluator, type Decision, type UserLookup } from './evaluator.js';
import { PolicyIndex } from './policy-index.js';
import { userPermissions, type PermissionsQuery } from './user-permissions.js';

/**
 * The agent's PDP: the decision indexes kept beside the local store, and the
 * evaluator over them. Every call is synchronous, so it decides at exactly
 * one applied version (`store.version`, read in the same tick).
 */
export class Decider {
  readonly index = new PolicyIndex();
  /** Listing questions (who may, what may, where may), each answer checked by the same evaluator. */
  readonly enumerate: Enumerator;
  private readonly evaluator: Evaluator;
  private readonly lookup: UserLookup;

  /**
   * @param served the tenants a scoped agent holds (undefined: the whole env).
   * A scoped agent answers in those tenants exactly as a whole agent would and
   * refuses (421) anything else (invariant 11; docs/architecture.md).
   */
  constructor(private readonly store: LocalStore, readonly served?: ReadonlySet<string>) {
    store.observe(this.index);
    this.lookup = {
      user: (key) => store.get('user', key)?.value,
      tenant: (key) => store.get('tenant', key)?.value,
    };
    this.evaluator = new Evaluator(this.index, this.lookup);
    this.enumerate = new Enumerator(store, this.index, this.evaluator);
  }

  get version(): number {
    return this.store.version;
  }

  check(c: Check, explain = false): Decision & { version: number } {
    if (this.served) this.tenantOf(c);
    const d = this.evaluator.check(c, explain) as Decision & { version: number };
    d.version = this.store.version;
    return d;
  }

  /** Whether the user holds `type:key#role` in `tenant`, directly, through a subject set or derived. */
  holds(user: string, holding: string, tenant: string): boolean {
    return this.evaluator.holdsAny(user, [holding], false, tenant) !== undefined;
  }

  /** The tenant `c` is decided in; on a scoped agent, refused (421) unless it is served. */
  tenantOf(c: Check): string {
    const tenant = this.evaluator.tenantOf(c);
    if (!this.served) return tenant;
    if (c.resource.tenant === undefined && c.resource.key !== undefined && !this.index.instances.has(`${c.resource.type}:${c.resource.key}`)) {
      // A whole agent would decide in the instance's tenant, which this one cannot know: it holds only its tenants' instances.
      throw this.notServed(`the check names no tenant and ${c.resource.type}:${c.resource.key} is no instance of ${this.servedText()}, so it may belong to another tenant; name the tenant (resource.tenant) or ask an agent that serves it`);
    }
    this.requireServed(tenant);
    return tenant;
  }

  /** Throws 421 unless this agent holds `tenant`. */
  requireServed(tenant: string): void {
    if (this.served && !this.served.has(tenant)) throw this.notServed(`this agent serves ${this.servedText()}, not "${tenant}"; ask an agent that serves it (or one without AGENT_TENANTS)`);
  }

  /**
   * For a read of one fact this agent does not hold: on a scoped agent, 421
   * when the fact may be another tenant's (its key names one not served, or
   * only its value could say), so "not found" is said only when it is true.
   */
  requireAbsentIsKnown(type: string, key: string): void {
    if (!this.served) return;
    const tenant = tenantOfKey(type, key);
    if (tenant !== undefined) this.requireServed(tenant);
    else if (tenantInValue(type)) this.requireWhole(`say whether ${type} "${key}" exists: it may belong to another tenant`);
  }

  /** Throws 421 on a scoped agent: `what` would show every tenant. */
  requireWhole(what: string): void {
    if (this.served) throw this.notServed(`this agent serves ${this.servedText()} only, so it cannot ${what}; ${this.served.size === 1 ? 'name that tenant' : 'name tenants it serves'} or ask an agent without AGENT_TENANTS`);
  }

  userPermissions(q: PermissionsQuery) {
    if (this.served) {
      if (!q.tenants) this.requireWhole('list permissions in every tenant (tenants: [...] limits the list)');
      for (const t of q.tenants!) this.requireServed(t);
    }
    return userPermissions(q, this.index, this.evaluator, this.lookup);
  }

  private servedText(): string {
    const list = [...this.served!].map((t) => `"${t}"`).join(', ');
    return this.served!.size === 1 ? `tenant ${list}` : `tenants ${list}`;
  }

  private notServed(message: string): FactsyncError {
    return new FactsyncError('tenant_not_served', message, { tenants: [...this.served!] });
  }
}
