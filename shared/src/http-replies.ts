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
export const WriteReply = Type.Object({ version: Type.Integer({ minimum: 1 }), sync: Type.Optional(SyncStatus) });
/** `POST /v1/envs/:env/writes`: one result per write, in order. */
export const WritesReply = Type.Object({
  results: Type.Array(Type.Union([
    Type.Object({ version: Type.Integer({ minimum: 1 }) }),
    Type.Object({ error: Type.String(), message: Type.String() }),
  ])),
});
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

export const parseChangesReply = parser(ChangesReply, 'changes page');
export const parseSnapshotReply = parser(SnapshotReply, 'snapshot');
export const parseWriteReply = parser(WriteReply, 'write answer');
export const parseWritesReply = parser(WritesReply, 'writes answer');
