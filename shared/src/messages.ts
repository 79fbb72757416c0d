import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Change, EnvName, Fact, FactType } from './facts.js';
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
  users: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: MAX_USAGE_BATCH }),
});
export const usageMonth = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

export const ClientMessage = Type.Union([HelloMessage, AckMessage, UsageMessage]);
export type UsageMessage = Static<typeof UsageMessage>;
export type HelloMessage = Static<typeof HelloMessage>;
export type AckMessage = Static<typeof AckMessage>;
export type ClientMessage = Static<typeof ClientMessage>;

export const WelcomeMessage = Type.Object({
  type: Type.Literal('welcome'),
  head: Version,
  epoch: Epoch,
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
export const ServerMessage = Type.Union([WelcomeMessage, SnapshotMessage, ChangesMessage, ErrorMessage, UsageOkMessage]);
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

/** Every inbound frame goes through here; the output of JSON.parse is never cast unchecked. */
export function parseClientMessage(raw: string): Result<ClientMessage> {
  const json = parseJson(raw);
  if (!json.ok) return json;
  if (clientCheck.Check(json.value)) return ok(json.value);
  const t = (json.value as { type?: unknown } | null)?.type;
  if (t !== 'hello' && t !== 'ack' && t !== 'usage') return err(`unknown message type ${JSON.stringify(t)}: expected "hello", "ack" or "usage"`);
  return err(`invalid ${t} message: ${firstProblem(t === 'hello' ? helloCheck : t === 'ack' ? ackCheck : usageCheck, json.value)}`);
}

export function parseServerMessage(raw: string): Result<ServerMessage> {
  const json = parseJson(raw);
  if (!json.ok) return json;
  if (serverCheck.Check(json.value)) return ok(json.value);
  return err(`invalid server message: ${firstProblem(serverCheck, json.value)}`);
}

export const errorFrame = (code: ErrorCode, message: string): string =>
  JSON.stringify({ type: 'error', error: code, message } satisfies ErrorMessage);
