import type { SyncStatus, WaitFor } from '@factsync/shared';

export interface AgentView {
  applied: number;
  since: number;
  connected: boolean;
  conn: string | null;
}

/** The two rules both functions below apply: who has V, and whose ack is still awaited for V. */
const hasApplied = (a: AgentView | undefined, version: number): boolean => (a?.applied ?? 0) >= version;
const isAwaited = (a: AgentView, version: number, kind: WaitFor['kind']): boolean =>
  a.connected && (kind !== 'all' || a.since < version);

/**
 * The sync contract as a pure function (DESIGN.md, "Waiting").
 * `all`: every acking agent connected when V got its version (its connection
 * registered at a head < V) and still connected; an agent whose socket is gone
 * leaves the set. `n`: any n agents have applied V. ids: exactly those agents.
 */
export function evaluateSync(agents: ReadonlyMap<string, AgentView>, version: number, waitFor: WaitFor): SyncStatus {
  const acked: string[] = [];
  const pending: string[] = [];
  switch (waitFor.kind) {
    case 'ids':
      for (const id of waitFor.ids) (hasApplied(agents.get(id), version) ? acked : pending).push(id);
      return { version, synced: pending.length === 0, acked, pending };
    case 'all':
    case 'count':
    case 'local':
      for (const [id, a] of agents) {
        if (hasApplied(a, version)) acked.push(id);
        else if (isAwaited(a, version, waitFor.kind)) pending.push(id);
      }
      acked.sort();
      pending.sort();
      if (waitFor.kind === 'count') return { version, synced: acked.length >= waitFor.n, acked, pending };
      return { version, synced: pending.length === 0, acked, pending };
  }
}

/**
 * Whether V is synced, without building the status: the ack path calls this for
 * every waiter on every ack event, so it must not allocate or sort (a profile
 * showed the full evaluation there).
 */
export function isSynced(agents: ReadonlyMap<string, AgentView>, version: number, waitFor: WaitFor): boolean {
  switch (waitFor.kind) {
    case 'ids':
      for (const id of waitFor.ids) if (!hasApplied(agents.get(id), version)) return false;
      return true;
    case 'count': {
      let n = 0;
      for (const a of agents.values()) if (hasApplied(a, version) && ++n >= waitFor.n) return true;
      return false;
    }
    case 'all':
    case 'local':
      for (const a of agents.values()) if (!hasApplied(a, version) && isAwaited(a, version, waitFor.kind)) return false;
      return true;
  }
}
