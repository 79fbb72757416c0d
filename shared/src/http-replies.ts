import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Change, Fact } from './facts.js';
import { err, ok, type Result } from './result.js';
import { SyncStatus } from './sync.js';

/**
 * The server's HTTP replies the agent reads, checked once here like the
 * websocket frames: a proxy's error page, a truncated body or another
 * program's JSON never reaches the local store or a writer's answer.
 */

const Epoch = Type.Union([Type.String(), Type.Null()]);

/** `GET /v1/envs/:env/changes`. */
export const ChangesReply = Type.Object({ head: Type.Integer({ minimum: 0 }), epoch: Epoch, changes: Type.Array(Change) });
/** `GET /v1/envs/:env/snapshot`. */
export const SnapshotReply = Type.Object({ version: Type.Integer({ minimum: 0 }), epoch: Epoch, id: Type.Optional(Type.String()), facts: Type.Array(Fact) });
/** `POST /v1/envs/:env/facts`. */
/** What a write may be told besides its version: likely typos that were written as asked (a custom type near a well-known one, a wait for an agent the env never saw). */
export const Warnings = Type.Array(Type.String(), { maxItems: 16, description: 'sentences about what was probably not meant; the write was applied as sent' });
export const WriteReply = Type.Object({
  // 0 only for a source's position recorded in an env without versions yet (no ops: no version).
  version: Type.Integer({ minimum: 0 }),
  epoch: Type.String({ minLength: 1, maxLength: 64 }),
  /** A source's position not after the recorded one: nothing applied; `version` is the recorded one's. */
  replayed: Type.Optional(Type.Literal(true)),
  sync: Type.Optional(SyncStatus),
  warnings: Type.Optional(Warnings),
});
/** `GET /v1/envs/:env/sources`: where each source is, as the server recorded it with its writes. */
export const SourcesReply = Type.Array(Type.Object({
  name: Type.String(), position: Type.String(), version: Type.Integer({ minimum: 0 }), updated_at: Type.String({ description: 'ISO 8601' }),
}));
/** `POST /v1/envs/:env/writes`: one result per write, in order. */
export const WritesReply = Type.Object({
  results: Type.Array(Type.Union([
    Type.Object({ version: Type.Integer({ minimum: 1 }), epoch: Type.String({ minLength: 1, maxLength: 64 }) }),
    Type.Object({ error: Type.String(), message: Type.String() }),
  ])),
});
/** `GET /v1/envs/:env/head`. */
export const HeadReply = Type.Object({ version: Type.Integer({ minimum: 0 }), epoch: Epoch, id: Type.String() });
/** `GET /v1/envs/:env/facts/:type/:key`. */
export const FactReply = Type.Object({ type: Type.String(), key: Type.String(), value: Type.Record(Type.String(), Type.Unknown()), version: Type.Integer({ minimum: 0 }) });
/** `GET /v1/envs/:env/facts`: a page of a scan, with the head (and the env's fact count) read after it. */
export const FactsPageReply = Type.Object({
  version: Type.Integer({ minimum: 0 }), epoch: Epoch, id: Type.String(), count: Type.Integer({ minimum: 0 }),
  facts: Type.Array(Fact), next_cursor: Type.Union([Type.String(), Type.Null()]),
});
/** `GET /v1/limits`. */
export const LimitsReply = Type.Object({
  max_ops_per_write: Type.Integer({ minimum: 1 }), body_limit_bytes: Type.Integer({ minimum: 1 }), log_retention: Type.Integer({ minimum: 1 }), store: Type.String(),
});
/** `GET /v1/envs`. */
export const EnvsReply = Type.Object({ envs: Type.Array(Type.String()) });
/** `POST /v1/envs/:env`: 201 created, 200 it existed. */
export const CreateEnvReply = Type.Object({ env: Type.String(), created: Type.Boolean() });
/** `GET /v1/envs/:env/agents`. */
export const AgentsReply = Type.Array(Type.Object({
  id: Type.String(), applied: Type.Integer(), connected: Type.Boolean(),
  last_seen: Type.Union([Type.String(), Type.Null()]), replica: Type.Optional(Type.Union([Type.String(), Type.Null()])),
}));
/** `POST /v1/tokens`. */
export const TokenReply = Type.Object({ token: Type.String({ minLength: 1 }), expires_at: Type.String() });
export type TokenReply = Static<typeof TokenReply>;
export type HeadReply = Static<typeof HeadReply>;
export type FactReply = Static<typeof FactReply>;
export type FactsPageReply = Static<typeof FactsPageReply>;
export type LimitsReply = Static<typeof LimitsReply>;
export type EnvsReply = Static<typeof EnvsReply>;
export type SourcesReply = Static<typeof SourcesReply>;
export type CreateEnvReply = Static<typeof CreateEnvReply>;
export type AgentsReply = Static<typeof AgentsReply>;
export type ChangesReply = Static<typeof ChangesReply>;
export type SnapshotReply = Static<typeof SnapshotReply>;
export type WriteReply = Static<typeof WriteReply>;
export type WritesReply = Static<typeof WritesReply>;

function parser<T extends TSchema>(schema: T, what: string): (body: unknown) => Result<Static<T>> {
  const check = TypeCompiler.Compile(schema);
  return (body) => {
    if (check.Check(body)) return ok(body);
    const e = check.Errors(body).First();
    return err(`the server's ${what} is not one (${e ? `${e.path || 'the body'}: ${e.message}` : 'wrong shape'})`);
  };
}

export const parseTokenReply = parser(TokenReply, 'token');
export const parseHeadReply = parser(HeadReply, 'head');
export const parseFactReply = parser(FactReply, 'fact');
export const parseFactsPageReply = parser(FactsPageReply, 'facts page');
export const parseLimitsReply = parser(LimitsReply, 'limits');
export const parseEnvsReply = parser(EnvsReply, 'env list');
export const parseSourcesReply = parser(SourcesReply, 'source list');
export const parseCreateEnvReply = parser(CreateEnvReply, 'env creation answer');
export const parseAgentsReply = parser(AgentsReply, 'agent list');
export const parseChangesReply = parser(ChangesReply, 'changes page');
export const parseSnapshotReply = parser(SnapshotReply, 'snapshot');
export const parseWriteReply = parser(WriteReply, 'write answer');
export const parseWritesReply = parser(WritesReply, 'writes answer');
