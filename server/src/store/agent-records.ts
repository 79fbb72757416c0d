import { emptyAgentInfo, type AgentInfo } from '@factsync/shared';
import type { AgentRecord } from './fact-store.js';

/** Both stores build the listing the same way from the same five pieces. */
export function toAgentRecords(
  now: number,
  sessions: ReadonlyMap<string, string>,
  infos: ReadonlyMap<string, AgentInfo>,
  applied: ReadonlyMap<string, number>,
  leases: ReadonlyMap<string, number>,
): AgentRecord[] {
  const out: AgentRecord[] = [];
  for (const [id, session] of sessions) {
    const info = infos.get(id) ?? emptyAgentInfo();
    const lease = leases.get(id) ?? 0;
    const present = lease >= now;
    const connected = present && info.connected;
    // A connected agent was last seen at its last lease renewal.
    const lastSeenMs = connected && info.leaseMs > 0 ? Math.max(info.seenMs, lease - info.leaseMs) : info.seenMs;
    out.push({ id, session, replica: info.replica, since: info.since, applied: applied.get(id) ?? 0, connected, present, lastSeenMs });
  }
  return out;
}
