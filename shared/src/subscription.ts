import { followsChain } from './chain.js';
import { TYPE_PATTERN, type Change } from './facts.js';
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

/** Whether `change` follows the change whose id is `prevId`: by its `prev` link when it is a share, by its chain id when whole. */
export function followsHistory(prevId: string, change: Change): boolean {
  return change.prev !== undefined ? change.prev === prevId : followsChain(prevId, change);
}
