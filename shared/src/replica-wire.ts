import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { err, ok, type Result } from './result.js';

/**
 * What replicas tell each other through the store, and what the store keeps
 * about agents: each format has readable names here and one encode/decode
 * pair. The compact encodings (one-letter JSON keys, `c:`/`m:` doorbells,
 * `since|c|replica` lines) stay on the wire, because the Lua scripts write
 * them too and they travel on every ack and write; nothing outside this file
 * reads a one-letter field.
 */

// ---- change doorbells --------------------------------------------------------

/** Doorbell prefixes: one change, or a group (its changes one per line). The Lua WRITE script uses the same. */
export const DOORBELL = { single: 'c', group: 'm' } as const;

/**
 * "Version `version` exists in epoch `epoch`": `change` carries that change's
 * JSON when small; `changes` a whole group ending at `version`, in order.
 */
export interface Doorbell { version: number; epoch: string; change?: string; changes?: string[] }

/**
 * `c:<version>:<epoch>[:<change JSON>]` or `m:<version>:<epoch>:<json>\n<json>…`:
 * the change text is forwarded to agents without being parsed, and a doorbell
 * of another epoch (the store lost data) is never mistaken for the next
 * version. Epochs are nanoids, which never contain ':'.
 */
export function encodeDoorbell(d: Doorbell): string {
  if (d.changes !== undefined) return `${DOORBELL.group}:${d.version}:${d.epoch}:${d.changes.join('\n')}`;
  return d.change === undefined ? `${DOORBELL.single}:${d.version}:${d.epoch}` : `${DOORBELL.single}:${d.version}:${d.epoch}:${d.change}`;
}

export function decodeDoorbell(message: string): Result<Doorbell> {
  const group = message.startsWith(`${DOORBELL.group}:`);
  if (!group && !message.startsWith(`${DOORBELL.single}:`)) return err(`doorbell does not start with "${DOORBELL.single}:" or "${DOORBELL.group}:"`);
  const second = message.indexOf(':', 2);
  const third = second < 0 ? -1 : message.indexOf(':', second + 1);
  const version = Number(message.slice(2, second < 0 ? undefined : second));
  const epoch = second < 0 ? '' : message.slice(second + 1, third < 0 ? undefined : third);
  if (!Number.isSafeInteger(version) || version < 1 || epoch === '') return err(`bad change doorbell ${message.slice(0, 40)}`);
  if (third < 0) return ok({ version, epoch });
  // A group's changes are JSON texts, which never hold a raw newline: one per line.
  return ok(group ? { version, epoch, changes: message.slice(third + 1).split('\n') } : { version, epoch, change: message.slice(third + 1) });
}

// ---- control events ------------------------------------------------------------

/**
 * Cross-replica control events, on a channel of their own: a session of
 * `agentId` opened on `replica` (any other replica closes its older one), or a
 * replica's summary of its agents for one env: `floor` = every agent it holds
 * has every version ≤ floor, `histogram` = [applied, count] pairs, `max` =
 * the highest applied.
 */
export type ControlEvent =
  | { type: 'join'; agentId: string; session: string; replica: string }
  | { type: 'summary'; replica: string; floor: number; histogram: [number, number][]; max: number };

const JoinWire = Type.Object({ t: Type.Literal('join'), id: Type.String(), s: Type.String(), r: Type.String() });
const SummaryWire = Type.Object({
  t: Type.Literal('sum'), r: Type.String(), f: Type.Number(), m: Type.Number(),
  h: Type.Array(Type.Tuple([Type.Number(), Type.Number()])),
});
const controlCheck = TypeCompiler.Compile(Type.Union([JoinWire, SummaryWire]));
type ControlWire = Static<typeof JoinWire> | Static<typeof SummaryWire>;

export function encodeControlEvent(e: ControlEvent): string {
  const wire: ControlWire = e.type === 'join'
    ? { t: 'join', id: e.agentId, s: e.session, r: e.replica }
    : { t: 'sum', r: e.replica, f: e.floor, h: e.histogram, m: e.max };
  return JSON.stringify(wire);
}

export function decodeControlEvent(message: string): Result<ControlEvent> {
  let wire: unknown;
  try {
    wire = JSON.parse(message);
  } catch {
    return err('control event is not JSON');
  }
  if (!controlCheck.Check(wire)) return err('control event has an unknown shape');
  const w = wire as ControlWire;
  return ok(w.t === 'join'
    ? { type: 'join', agentId: w.id, session: w.s, replica: w.r }
    : { type: 'summary', replica: w.r, floor: w.f, histogram: w.h, max: w.m });
}

// ---- agent records in the store ------------------------------------------------

/** What the store keeps about an agent's last session. */
export interface AgentInfo {
  /** The replica that holds (or held) its session; null when unknown. */
  replica: string | null;
  /** Awaited for versions > since. */
  since: number;
  connected: boolean;
  /** When the session opened, and when it was last seen (ms). */
  openedMs: number;
  seenMs: number;
  /** The lease of its session (ms): a connected agent was last seen at its last renewal. */
  leaseMs: number;
  addr: string;
}

const NO_INFO: AgentInfo = { replica: null, since: 0, connected: false, openedMs: 0, seenMs: 0, leaseMs: 0, addr: '' };

/** `{r, since, c, t, seen, addr, lm}`: the OPEN_SESSION and END_SESSION scripts write the same keys. */
export function encodeAgentInfo(i: AgentInfo): string {
  return JSON.stringify({ r: i.replica, since: i.since, c: i.connected ? 1 : 0, t: i.openedMs, seen: i.seenMs, addr: i.addr, lm: i.leaseMs });
}

export function decodeAgentInfo(raw: string): AgentInfo {
  try {
    const o = JSON.parse(raw) as Record<string, unknown>;
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
    return {
      replica: typeof o.r === 'string' ? o.r : null, since: num(o.since), connected: o.c === 1, openedMs: num(o.t), seenMs: num(o.seen),
      leaseMs: num(o.lm), addr: typeof o.addr === 'string' ? o.addr : '',
    };
  } catch {
    return NO_INFO;
  }
}

/** `since|c|replica`: the presence line the waiting rules read (no JSON on the path every waiter takes). */
export const encodePresence = (i: Pick<AgentInfo, 'since' | 'connected' | 'replica'>): string => `${i.since}|${i.connected ? 1 : 0}|${i.replica ?? ''}`;

export function decodePresence(raw: string): AgentInfo {
  const a = raw.indexOf('|');
  const b = raw.indexOf('|', a + 1);
  if (a < 0 || b < 0) return NO_INFO;
  const since = Number(raw.slice(0, a));
  return { ...NO_INFO, replica: raw.slice(b + 1) || null, since: Number.isFinite(since) ? since : 0, connected: raw.slice(a + 1, b) === '1' };
}

export const emptyAgentInfo = (): AgentInfo => ({ ...NO_INFO });
