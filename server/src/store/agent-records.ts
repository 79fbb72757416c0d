import type { AgentRecord } from './fact-store.js';

/** What the store keeps about an agent's last session (the `info` record of redis-scripts.ts). */
export interface AgentInfoRecord {
  r: string | null;
  since: number;
  c: number;
  seen: number;
  lm: number;
}

export function parseAgentInfo(raw: string): AgentInfoRecord {
  try {
    const o = JSON.parse(raw) as Record<string, unknown>;
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
    return { r: typeof o.r === 'string' ? o.r : null, since: num(o.since), c: num(o.c), seen: num(o.seen), lm: num(o.lm) };
  } catch {
    return { r: null, since: 0, c: 0, seen: 0, lm: 0 };
  }
}

/** The `pres` record "since|c|replica": no JSON on the path every waiter takes. */
export function parsePresence(raw: string): AgentInfoRecord {
  const a = raw.indexOf('|');
  const b = raw.indexOf('|', a + 1);
  const since = Number(raw.slice(0, a));
  return { r: raw.slice(b + 1) || null, since: Number.isFinite(since) ? since : 0, c: raw.slice(a + 1, b) === '1' ? 1 : 0, seen: 0, lm: 0 };
}

/** Both stores build the listing the same way from the same five pieces. */
export function toAgentRecords(
  now: number,
  sessions: ReadonlyMap<string, string>,
  infos: ReadonlyMap<string, AgentInfoRecord>,
  applied: ReadonlyMap<string, number>,
  leases: ReadonlyMap<string, number>,
): AgentRecord[] {
  const out: AgentRecord[] = [];
  for (const [id, session] of sessions) {
    const info = infos.get(id) ?? { r: null, since: 0, c: 0, seen: 0, lm: 0 };
    const lease = leases.get(id) ?? 0;
    const present = lease >= now;
    const connected = present && info.c === 1;
    // A connected agent was last seen at its last lease renewal.
    const lastSeenMs = connected && info.lm > 0 ? Math.max(info.seen, lease - info.lm) : info.seen;
    out.push({ id, session, replica: info.r, since: info.since, applied: applied.get(id) ?? 0, connected, present, lastSeenMs });
  }
  return out;
}
