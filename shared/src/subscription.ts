import { followsChain } from './chain.js';
import { TYPE_PATTERN, type Change, type Op } from './facts.js';
import { err, ok, type Result } from './result.js';

/** Most types one subscription may name. */
export const MAX_SUBSCRIPTION_TYPES = 32;

const ONE_TYPE = TYPE_PATTERN.slice(1, -1);
/** A comma list of fact types, as `?types=` takes it. */
export const TYPES_LIST_PATTERN = `^${ONE_TYPE}(,${ONE_TYPE}){0,${MAX_SUBSCRIPTION_TYPES - 1}}$`;
const typeRe = new RegExp(TYPE_PATTERN);

/** A comma list of fact types (`tail --types`): each checked, without repeats, at most MAX_SUBSCRIPTION_TYPES. */
export function parseTypesList(text: string): Result<string[]> {
  const types = [...new Set(text.split(',').map((t) => t.trim()).filter(Boolean))];
  const bad = types.find((t) => !typeRe.test(t));
  if (bad !== undefined) return err(`"${bad}" is not a fact type (a lower-case letter, then up to 63 of a-z 0-9 _)`);
  if (types.length === 0) return err('name at least one fact type');
  if (types.length > MAX_SUBSCRIPTION_TYPES) return err(`${types.length} types; at most ${MAX_SUBSCRIPTION_TYPES}`);
  return ok(types);
}

/** The canonical form of a `types` list: sorted, without repeats; the key under which a share is computed once. */
export const typesKey = (types: readonly string[]): string => [...new Set(types)].sort().join(',');

/**
 * A change as a subscriber with `types` receives it: the same version, id and
 * time, only the ops of those types (possibly none: every version still
 * travels, so versions stay contiguous), and `prev`, the id of the version
 * before. The subscriber cannot recompute the chain id over ops it did not
 * get, so it checks the link instead (invariant 9 on a share): `prev` must be
 * the id it holds, or the store's history was rewritten under it.
 */
export function shareOfChange(change: Change, prevId: string, types: ReadonlySet<string>): Change {
  return { version: change.version, id: change.id, prev: prevId, ts: change.ts, ops: change.ops.filter((o: Op) => types.has(o.type)) };
}

/** Whether `change` follows the change whose id is `prevId`: by its `prev` link when it is a share, by its chain id when whole. */
export function followsHistory(prevId: string, change: Change): boolean {
  return change.prev !== undefined ? change.prev === prevId : followsChain(prevId, change);
}
