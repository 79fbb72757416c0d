import { followsChain } from './chain.js';
import type { Change, Op } from './facts.js';

/** Most types one subscription may name. */
export const MAX_SUBSCRIPTION_TYPES = 32;

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
