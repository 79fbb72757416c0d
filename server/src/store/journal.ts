import type { RawChange, SourceRecord } from './fact-store.js';

/**
 * What the embedded store must keep across a restart, and the one hook
 * through which it is kept: the in-memory store applies each group of writes
 * by its rules (the same rules as the Redis scripts) and hands the group's
 * effect to the journal before it answers. The journal makes it durable
 * synchronously, so an answered write is on disk. Sessions, leases and acks
 * live only while the process does: agents reconnect and say what they applied.
 */

export interface IdempotencyEntry { version: number; hash: string; expiresMs: number }
export interface ProducerEntry { max: number; seqs: Map<number, { version: number; hash: string }>; expiresMs: number }

/** One group commit's effect on an env. */
export interface GroupCommit {
  epoch: string;
  version: number;
  /** Chain id at `version`. */
  id: string;
  changes: RawChange[];
  /** Fact field → its JSON, or null when deleted. */
  facts: Map<string, string | null>;
  /** The log keeps versions after this one (retention). */
  trimmedThrough: number;
  idempotency: Map<string, IdempotencyEntry>;
  producers: Map<string, ProducerEntry>;
  /** Sources whose position this group recorded (X-Source), atomically with its changes. */
  sources: Map<string, SourceRecord>;
}

/** An env as the journal kept it. */
export interface JournaledEnv {
  version: number;
  epoch: string;
  id: string;
  log: RawChange[];
  state: Map<string, string>;
  idempotency: Map<string, IdempotencyEntry>;
  producers: Map<string, ProducerEntry>;
  sources: Map<string, SourceRecord>;
}

export interface JournaledState {
  envs: Map<string, JournaledEnv>;
  /** env → month → user keys. */
  usage: Map<string, Map<string, Set<string>>>;
}

export interface Journal {
  /** Durable when it returns; throws when it could not be made durable (then nothing of the group may be answered). */
  commit(env: string, c: GroupCommit): void;
  /** An env's epoch, created before its first write (an agent's hello may create it). */
  epoch(env: string, epoch: string): void;
  usage(env: string, month: string, users: readonly string[]): void;
  close(): void;
}
