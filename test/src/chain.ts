import { GENESIS_ID, chainId, type Change, type Op } from '@factsync/shared';

/**
 * Changes with real chained ids (invariant 9) for tests that script a server:
 * `change(v)` is version v of one history whose ops are `opsOf(v)`.
 */
export function chainedHistory(opsOf: (v: number) => Op[], ts = '2026-01-01T00:00:00.000Z'): (v: number) => Change {
  const ids = [GENESIS_ID];
  const idOf = (v: number): string => {
    for (let i = ids.length; i <= v; i++) ids.push(chainId(ids[i - 1]!, i, ts, JSON.stringify(opsOf(i))));
    return ids[v]!;
  };
  return (v: number) => ({ version: v, id: idOf(v), ts, ops: opsOf(v) });
}
