import { Type, type Static } from '@sinclair/typebox';
import type { AgentRecord } from '../store/fact-store.js';
import { EnvName, WriteReply } from '@factsync/shared';

/** Route-level schemas shared by several route files; fact and protocol schemas live in shared/. */
export const EnvParams = Type.Object({ env: EnvName });

export const ErrorBody = Type.Object(
  { error: Type.String(), message: Type.String() },
  { additionalProperties: true, description: 'every error: a stable code and a sentence for humans' },
);

/**
 * Versions belong to an epoch (invariant 5): a write names both, and `V.EPOCH` is its consistency
 * token for `at_least`. The schema clients parse the answer with, said once.
 */
export const WriteResponse = WriteReply;

/** Idempotency by producer: a producer numbers its writes; the server remembers its last 128 numbers. */
export const PRODUCER_HEADERS = {
  'x-producer-id': Type.Optional(Type.String({ description: 'with X-Producer-Seq, instead of Idempotency-Key: one id per producer process' })),
  'x-producer-seq': Type.Optional(Type.String({ description: "the write's number in its producer's sequence (1, 2, ...; in a batch, the first write's); a retry of one of the last 128 returns its first version" })),
};

export const WAIT_HEADERS = {
  'x-wait-for': Type.Optional(Type.String({ description: '"all", an integer n, or a comma list of agent ids' })),
  'x-wait-timeout': Type.Optional(Type.String({ description: 'seconds: 0 = now, >0 = up to, <0 = until synced' })),
  'x-timeout-policy': Type.Optional(Type.String({ description: '"ignore" (default) or "fail" (424 on timeout)' })),
};

/** One agent as `GET /agents` and the status stream show it. */
export const AgentInfo = Type.Object({
  id: Type.String(),
  applied: Type.Integer(),
  connected: Type.Boolean(),
  last_seen: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  replica: Type.Union([Type.String(), Type.Null()]),
});
export type AgentInfo = Static<typeof AgentInfo>;

/** Store records → the wire form, sorted by id. */
export const agentInfos = (records: AgentRecord[]): AgentInfo[] =>
  records
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((a) => ({
      id: a.id, applied: a.applied, connected: a.connected,
      last_seen: a.lastSeenMs > 0 ? new Date(a.lastSeenMs).toISOString() : null, replica: a.replica,
    }));
