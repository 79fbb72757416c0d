import type { SyncStatus, WaitFor } from '@factsync/shared';
import { gate, summarize, type Summary } from './summary.js';

/** What the waiting rules need of an agent: the store's record of its current session. */
export interface AgentSyncState {
  id: string;
  /** Awaited for versions > since. */
  since: number;
  /** Applied by its current session (0 when that ack belongs to a rewritten history). */
  applied: number;
  /** Connected, or its last session ended less than a lease ago. */
  present: boolean;
}

/** Invariant 8: an agent has V when its current session applied V; one that left has nothing to vouch for. */
export const hasApplied = (a: AgentSyncState | undefined, version: number): boolean => !!a && a.present && a.applied >= version;
/** It was connected when V was written (or resumed from before V) and its lease has not ended. */
export const isAwaited = (a: AgentSyncState, version: number): boolean => a.present && a.since < version;

/**
 * The sync contract as a pure function (docs/api.md, "Waiting"; invariant 8).
 * `all`: every agent awaited for V has applied V. `n`: any n present agents
 * have applied V. ids: exactly those agents, each present and having applied V.
 */
export function evaluateSync(agents: Iterable<AgentSyncState>, version: number, waitFor: WaitFor): SyncStatus {
  const acked: string[] = [];
  const pending: string[] = [];
  if (waitFor.kind === 'ids') {
    const byId = new Map<string, AgentSyncState>();
    for (const a of agents) byId.set(a.id, a);
    for (const id of waitFor.ids) (hasApplied(byId.get(id), version) ? acked : pending).push(id);
    return { version, synced: pending.length === 0, acked, pending };
  }
  for (const a of agents) {
    if (hasApplied(a, version)) acked.push(a.id);
    else if (isAwaited(a, version)) pending.push(a.id);
  }
  acked.sort();
  pending.sort();
  if (waitFor.kind === 'count') return { version, synced: acked.length >= waitFor.n, acked, pending };
  return { version, synced: pending.length === 0, acked, pending };
}

/**
 * The registry of one env prepared once for many waiters: the same summary a
 * replica publishes, over the present agents, answers `all` and `n` through
 * the same gate; ids are looked up. Judging W waiters costs O(agents + W), not
 * O(W × agents); the full status (with its id lists) is built only for the
 * waiters it releases.
 */
export class SyncIndex {
  private readonly summary: Summary;
  private readonly byId = new Map<string, AgentSyncState>();

  constructor(private readonly agents: readonly AgentSyncState[]) {
    const present: AgentSyncState[] = [];
    for (const a of agents) {
      this.byId.set(a.id, a);
      if (a.present) present.push(a);
    }
    this.summary = summarize(present);
  }

  isSynced(version: number, waitFor: WaitFor): boolean {
    return gate([this.summary], version, waitFor, (id) => hasApplied(this.byId.get(id), version));
  }

  status(version: number, waitFor: WaitFor): SyncStatus {
    return evaluateSync(this.agents, version, waitFor);
  }
}
