import type { Check } from '@factsync/shared';
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

  constructor(private readonly store: LocalStore) {
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
    const d = this.evaluator.check(c, explain) as Decision & { version: number };
    d.version = this.store.version;
    return d;
  }

  /** Whether the user holds `type:key#role`, directly, through a subject set or derived. */
  holds(user: string, holding: string): boolean {
    return this.evaluator.holdsAny(user, [holding], false) !== undefined;
  }

  tenantOf(c: Check): string {
    return this.evaluator.tenantOf(c);
  }

  userPermissions(q: PermissionsQuery) {
    return userPermissions(q, this.index, this.evaluator, this.lookup);
  }
}
