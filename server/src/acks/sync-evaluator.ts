import type { SyncStatus, WaitFor } from '@factsync/shared';

export interface AgentView {
  applied: number;
  since: number;
  connected: boolean;
  conn: string | null;
}

/**
 * The sync contract as a pure function (DESIGN.md, "Waiting").
 * `all`: every acking agent connected when V got its version (its connection
 * registered at a head < V) and still connected; an agent whose socket is gone
 * leaves the set. `n`: any n agents have applied V. ids: exactly those agents.
 */
/**
 * Whether V is synced, without building the status: the ack path calls this for
 * every waiter on every ack event, so it must not allocate or sort (a profile
 * showed the full evaluation there).
 */
export function isSynced(agents: ReadonlyMap<string, AgentView>, version: number, waitFor: WaitFor): boolean {
  switch (waitFor.kind) {
    case 'ids':
      for (const id of waitFor.ids) if ((agents.get(id)?.applied ?? 0) < version) return false;
      return true;
    case 'count': {
      let n = 0;
      for (const a of agents.values()) if (a.applied >= version && ++n >= waitFor.n) return true;
      return false;
    }
    case 'all':
    case 'local':
      for (const a of agents.values()) if (a.applied < version && a.connected && (waitFor.kind !== 'all' || a.since < version)) return false;
      return true;
  }
}

export function evaluateSync(agents: ReadonlyMap<string, AgentView>, version: number, waitFor: WaitFor): SyncStatus {
  const acked: string[] = [];
  const pending: string[] = [];
  switch (waitFor.kind) {
    case 'ids':
      for (const id of waitFor.ids) ((agents.get(id)?.applied ?? 0) >= version ? acked : pending).push(id);
      return { version, synced: pending.length === 0, acked, pending };
    case 'all':
    case 'count':
    case 'local':
      for (const [id, a] of agents) {
        if (a.applied >= version) acked.push(id);
        else if (a.connected && (waitFor.kind !== 'all' || a.since < version)) pending.push(id);
      }
      acked.sort();
      pending.sort();
      if (waitFor.kind === 'count') return { version, synced: acked.length >= waitFor.n, acked, pending };
      return { version, synced: pending.length === 0, acked, pending };
  }
}
