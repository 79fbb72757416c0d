import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Change, EnvName, Fact, FactKey, FactType } from './facts.js';
import type { ErrorCode } from './errors.js';
import { describeJsonError } from './json-position.js';
import { MAX_SUBSCRIPTION_TYPES } from './subscription.js';
import { MAX_SCOPE_TENANTS, SCOPE_TENANT_PATTERN } from './scope.js';
import { err, ok, type Result } from './result.js';

/** Websocket protocol (docs/api.md, "Websocket protocol"): JSON text frames, a union on `type`. */

const Version = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Epoch = Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()]);
export const AGENT_ID_PATTERN = '^[A-Za-z0-9_.:@-]{1,128}$';
export const AgentId = Type.String({ pattern: AGENT_ID_PATTERN, description: 'agent id: 1-128 of A-Z a-z 0-9 _ . : @ -' });

export const HelloMessage = Type.Object({
  type: Type.Literal('hello'),
  env: EnvName,
  agent_id: AgentId,
  applied: Version,
  epoch: Type.Optional(Epoch),
  /** The `id` of the change at `applied` (invariant 9): lets the server see a history that forked under the agent. */
  applied_id: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()])),
  ack: Type.Optional(Type.Boolean()),
  /** Subscribers only (`ack: false`): receive only ops of these fact types; every version still comes, with `prev` (subscription.ts). */
  types: Type.Optional(Type.Array(FactType, { minItems: 1, maxItems: MAX_SUBSCRIPTION_TYPES })),
  /** A scoped agent or subscriber: receive only the share of these tenants (scope.ts); every version still comes, with `prev`. */
  tenants: Type.Optional(Type.Array(Type.String({ pattern: SCOPE_TENANT_PATTERN }), { minItems: 1, maxItems: MAX_SCOPE_TENANTS })),
});
export const AckMessage = Type.Object({ type: Type.Literal('ack'), version: Version });

/** Monthly active users (docs/api.md, "Decisions on the agent": usage): user keys an agent checked in a UTC month, reported once per batch. */
export const MAX_USAGE_BATCH = 1000;
export const USAGE_MONTH_PATTERN = '^[0-9]{4}-(0[1-9]|1[0-2])$';
export const UsageMessage = Type.Object({
  type: Type.Literal('usage'),
  seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  month: Type.String({ pattern: USAGE_MONTH_PATTERN, description: 'UTC month YYYY-MM' }),
  users: Type.Array(FactKey, { minItems: 1, maxItems: MAX_USAGE_BATCH }),
});
export const usageMonth = (ms: number): string => new Date(ms).toISOString().slice(0, 7);
/**
 * Months a report may name, around the server's clock: an agent that was offline
 * may still hold last months' keys, and clocks drift, but `1970-01` is a bug or
 * an attack, not usage.
 */
export const USAGE_MONTHS_BACK = 3;
export function usageMonthProblem(month: string, nowMs: number): string | undefined {
  const d = new Date(nowMs);
  const index = (y: number, m: number): number => y * 12 + m;
  const now = index(d.getUTCFullYear(), d.getUTCMonth() + 1);
  const [y, m] = month.split('-').map(Number) as [number, number];
  const at = index(y, m);
  if (at > now + 1 || at < now - USAGE_MONTHS_BACK) {
    return `usage month ${month} is outside the months the server takes (${USAGE_MONTHS_BACK} back to 1 ahead of ${usageMonth(nowMs)}); check the agent's clock`;
  }
  return undefined;
}
/** A report is one frame: what a usage frame holds besides its keys, with room to spare. */
const USAGE_FRAME_OVERHEAD = 128;
/**
 * The keys of one usage frame, cut so that the frame fits `maxFrameBytes` (the
 * server's inbound limit, announced in welcome): batches are bounded in bytes,
 * not only in count, or 1,000 long keys make a frame the server closes with 1009.
 * Returns how many of `keys` (from `from`) go into the next frame; 0 only when
 * one key alone cannot fit.
 */
export function usageBatchLength(keys: readonly string[], from: number, maxFrameBytes: number): number {
  let bytes = USAGE_FRAME_OVERHEAD;
  let n = 0;
  while (from + n < keys.length && n < MAX_USAGE_BATCH) {
    const k = keys[from + n]!;
    // JSON.stringify of a key: its UTF-8 bytes, quotes, a comma; escapes make it longer only for control characters.
    const size = Buffer.byteLength(JSON.stringify(k), 'utf8') + 1;
    if (bytes + size > maxFrameBytes) break;
    bytes += size;
    n++;
  }
  return n;
}

export const ClientMessage = Type.Union([HelloMessage, AckMessage, UsageMessage]);
export type UsageMessage = Static<typeof UsageMessage>;
export type HelloMessage = Static<typeof HelloMessage>;
export type AckMessage = Static<typeof AckMessage>;
export type ClientMessage = Static<typeof ClientMessage>;

export const WelcomeMessage = Type.Object({
  type: Type.Literal('welcome'),
  head: Version,
  epoch: Epoch,
  /** The largest frame this server takes from the client (WS_MAX_PAYLOAD_BYTES): every batch a client sends is cut to fit it. */
  max_payload: Type.Optional(Type.Integer({ minimum: 1 })),
  /** A snapshot follows (first start, another epoch, or a history that does not continue the agent's). */
  snapshot: Type.Optional(Type.Boolean()),
});
export const SnapshotMessage = Type.Object({
  type: Type.Literal('snapshot'),
  version: Version,
  epoch: Epoch,
  /** The chain id at `version`: the agent continues the chain from it. */
  id: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  facts: Type.Array(Fact),
  /**
   * A snapshot spans several frames of one version when it does not fit one
   * (WS_MAX_FRAME_BYTES): every frame but the last says `last: false`. Absent
   * means a whole snapshot in one frame.
   */
  last: Type.Optional(Type.Boolean()),
  /**
   * Changes after `version`, in order, for the agent to replay over the facts
   * of the earlier frames before it applies the snapshot: the server reads the
   * state in steps of a scan while writes go on, and this log of what was
   * written meanwhile makes it exact. The snapshot is then at the last one.
   */
  changes: Type.Optional(Type.Array(Change)),
  /**
   * On the last frame: how many facts the snapshot leaves (the env's count at
   * its final version). An agent whose assembled state has another count
   * discards it and asks for a whole snapshot again.
   */
  count: Type.Optional(Type.Integer({ minimum: 0 })),
});
export const ChangesMessage = Type.Object({ type: Type.Literal('changes'), changes: Type.Array(Change, { minItems: 1 }) });
export const ErrorMessage = Type.Object({ type: Type.Literal('error'), error: Type.String(), message: Type.String() });
/** The server stored usage batch `seq`; the agent forgets it. */
export const UsageOkMessage = Type.Object({ type: Type.Literal('usage_ok'), seq: Type.Integer({ minimum: 1 }) });
/**
 * The server will never store usage batch `seq` (it does not match the protocol,
 * or names a month out of range): the agent drops it instead of sending it again
 * on every session. The session goes on.
 */
export const UsageRefusedMessage = Type.Object({ type: Type.Literal('usage_refused'), seq: Type.Integer({ minimum: 1 }), error: Type.String(), message: Type.String() });
export const ServerMessage = Type.Union([WelcomeMessage, SnapshotMessage, ChangesMessage, ErrorMessage, UsageOkMessage, UsageRefusedMessage]);
export type UsageRefusedMessage = Static<typeof UsageRefusedMessage>;
export type UsageOkMessage = Static<typeof UsageOkMessage>;
export type WelcomeMessage = Static<typeof WelcomeMessage>;
export type SnapshotMessage = Static<typeof SnapshotMessage>;
export type ChangesMessage = Static<typeof ChangesMessage>;
export type ErrorMessage = Static<typeof ErrorMessage>;
export type ServerMessage = Static<typeof ServerMessage>;

const clientCheck = TypeCompiler.Compile(ClientMessage);
const helloCheck = TypeCompiler.Compile(HelloMessage);
const ackCheck = TypeCompiler.Compile(AckMessage);
const usageCheck = TypeCompiler.Compile(UsageMessage);
const serverCheck = TypeCompiler.Compile(ServerMessage);

function parseJson(raw: string): Result<unknown> {
  try {
    return ok(JSON.parse(raw) as unknown);
  } catch (e) {
    return err(`frame is not valid JSON (${describeJsonError(raw, (e as Error).message)})`);
  }
}

function firstProblem(check: { Errors(v: unknown): { First(): { path: string; message: string; schema: { description?: string } } | undefined } }, v: unknown): string {
  const e = check.Errors(v).First();
  if (!e) return 'does not match the protocol';
  // The schema's description says what is accepted (e.g. the env pattern); TypeBox's message only that it failed.
  const field = e.path.replace(/^\//, '') || 'the message';
  return e.schema.description ? `${field}: ${e.schema.description}` : `${field}: ${e.message}`;
}

/**
 * A client frame that failed to parse. `usageSeq` is set when it is a usage
 * report whose `seq` can be read: the server refuses that batch alone
 * (`usage_refused`) and the session goes on, since a report is advisory and
 * the agent must be able to drop it.
 */
export interface ClientFrameProblem {
  message: string;
  usageSeq?: number;
}

/** Every inbound frame goes through here; the output of JSON.parse is never cast unchecked. */
export function parseClientMessage(raw: string): Result<ClientMessage, ClientFrameProblem> {
  const json = parseJson(raw);
  if (!json.ok) return err({ message: json.error });
  if (clientCheck.Check(json.value)) return ok(json.value);
  const t = (json.value as { type?: unknown } | null)?.type;
  if (t !== 'hello' && t !== 'ack' && t !== 'usage') return err({ message: `unknown message type ${JSON.stringify(t)}: expected "hello", "ack" or "usage"` });
  const message = `invalid ${t} message: ${firstProblem(t === 'hello' ? helloCheck : t === 'ack' ? ackCheck : usageCheck, json.value)}`;
  const seq = (json.value as { seq?: unknown }).seq;
  return err(t === 'usage' && Number.isSafeInteger(seq) && (seq as number) >= 1 ? { message, usageSeq: seq as number } : { message });
}

const serverChecks: Record<ServerMessage['type'], TypeCheck<TSchema>> = {
  welcome: TypeCompiler.Compile(WelcomeMessage),
  snapshot: TypeCompiler.Compile(SnapshotMessage),
  changes: TypeCompiler.Compile(ChangesMessage),
  error: TypeCompiler.Compile(ErrorMessage),
  usage_ok: TypeCompiler.Compile(UsageOkMessage),
  usage_refused: TypeCompiler.Compile(UsageRefusedMessage),
};

/**
 * Where in a frame its first problem is, in the protocol's words: the version
 * and op of a change (`version 12, ops[3] (upsert user "…")`) or the fact of a
 * snapshot, so a frame an agent refuses names what to look for in the log.
 */
function locate(frame: unknown, path: string): string {
  const m = /^\/(changes|facts)\/(\d+)(?:\/ops\/(\d+))?/.exec(path);
  if (!m) return '';
  const list = (frame as Record<string, unknown>)[m[1]!] as unknown[];
  const item = list[Number(m[2])] as Record<string, unknown> | undefined;
  const brief = (o: unknown): string => {
    const x = (o ?? {}) as Record<string, unknown>;
    const key = typeof x.key === 'string' ? ` ${JSON.stringify(x.key.length > 60 ? `${x.key.slice(0, 60)}…` : x.key)}` : '';
    return `${typeof x.op === 'string' ? `${x.op} ` : ''}${typeof x.type === 'string' ? x.type : '?'}${key}`;
  };
  if (m[1] === 'facts') return ` (fact ${m[2]}: ${brief(item)})`;
  const version = typeof item?.version === 'number' ? `version ${item.version}` : `changes[${m[2]}]`;
  if (m[3] === undefined) return ` (${version})`;
  const ops = item?.ops as unknown[] | undefined;
  return ` (${version}, ops[${m[3]}]: ${brief(ops?.[Number(m[3])])})`;
}

export function parseServerMessage(raw: string): Result<ServerMessage> {
  const json = parseJson(raw);
  if (!json.ok) return json;
  if (serverCheck.Check(json.value)) return ok(json.value);
  const t = (json.value as { type?: unknown } | null)?.type;
  const check = typeof t === 'string' && Object.hasOwn(serverChecks, t) ? serverChecks[t as ServerMessage['type']] : undefined;
  if (!check) return err(`invalid server message: unknown type ${JSON.stringify(t)}`);
  const e = check.Errors(json.value).First();
  return err(`invalid ${String(t)} message: ${firstProblem(check, json.value)}${e ? locate(json.value, e.path) : ''}`);
}

export const errorFrame = (code: ErrorCode, message: string): string =>
  JSON.stringify({ type: 'error', error: code, message } satisfies ErrorMessage);
