import type { ControlEvent, Doorbell, FactsyncError, Op, ProducerSeq, SourcePosition } from '@factsync/shared';

/**
 * The interfaces the server talks to for durable state and cross-replica
 * events, one per concern (below). Implementations: `redis-store` (Redis and
 * Redis Cluster), `memory-store` (tests, throwaway demos) and `embedded-store`
 * (the memory store's rules journaled to SQLite); all pass the same contract
 * suite (test/integration/store-contract.test.ts), one part per concern.
 */

export interface EnvHead {
  version: number;
  /** Random id of the env's log; changes when the store lost its data (invariant 5). */
  epoch: string | null;
  /** Chain id of the change at `version` ("" at 0): invariant 9. */
  id: string;
}

/** A change kept as the exact JSON text stored in the log, so fan-out never re-serialises it. */
export interface RawChange {
  version: number;
  json: string;
}

/** A fact whose value is kept as stored JSON text. */
export interface RawFact {
  type: string;
  key: string;
  valueJson: string;
}

export interface WriteInput {
  ops: readonly Op[];
  ts: string;
  idempotencyKey?: string | undefined;
  /** Idempotency by producer sequence (X-Producer-Id/-Seq) instead of a key per write. */
  producer?: ProducerSeq | undefined;
  /**
   * A source's write (X-Source/-Position): its position is recorded in the same
   * atomic step; a position not after the recorded one applies nothing
   * (replayed), and one without ops records the position and makes no version.
   */
  source?: SourcePosition | undefined;
}

/** Where a source is, as the store recorded it with its last write. */
export interface SourceRecord {
  name: string;
  position: string;
  /** The env's version when the position was recorded. */
  version: number;
  /** When it was recorded (ISO 8601). */
  updatedAt: string;
}

export interface WriteOutcome {
  version: number;
  epoch: string;
  /** True when the idempotency key (or the source position) was seen before: nothing was applied. */
  duplicate: boolean;
  /** A source's write with no ops: the position was recorded, and `version` is the head (no new version). */
  positionOnly?: boolean;
}

/** One write of a group: its outcome, or why it alone was refused (the others are unaffected). */
export type WriteResult = { ok: true; outcome: WriteOutcome } | { ok: false; error: FactsyncError };

/** The single outcome of a group of one, or its error. */
export function oneWrite(results: readonly WriteResult[]): WriteOutcome {
  const r = results[0]!;
  if (!r.ok) throw r.error;
  return r.outcome;
}

export type ChangesPage =
  | { truncated: false; head: number; epoch: string | null; changes: RawChange[] }
  | { truncated: true; head: number; epoch: string | null };

export interface Snapshot {
  version: number;
  epoch: string | null;
  id: string;
  facts: RawFact[];
}

export interface StateScan {
  cursor: string;
  facts: RawFact[];
}

/** Where a hello asks to resume from. */
export interface ResumeRequest {
  applied: number;
  epoch: string | null;
  /** Chain id of the agent's change at `applied`; null = not sent (not checked). */
  appliedId: string | null;
}

/**
 * Whether the agent can continue from the log: `resume` (same epoch, chain id
 * matches), `new` (first start: a snapshot, nothing wrong), or why its state
 * cannot be trusted and needs a snapshot: another epoch, ahead of the store,
 * a forked chain, or a version the log no longer holds to check against.
 */
export type ResumeVerdict = 'resume' | 'new' | 'other_epoch' | 'ahead' | 'forked' | 'unverifiable';

export interface Resume extends EnvHead {
  verdict: ResumeVerdict;
}

export interface SessionOpen {
  id: string;
  /** Unique per socket: only this session's acks count, and a late close of an older one evicts nothing. */
  session: string;
  replica: string;
  leaseMs: number;
  addr: string;
  resume: ResumeRequest;
}

export interface SessionOpened extends Resume {
  /** The agent is awaited for versions > since (invariant 8). */
  since: number;
  /** What this session starts with as applied: hello.applied when it resumes, else 0. */
  applied: number;
  /** The session this one replaced, if the agent id had a live one. */
  replaced: { session: string; replica: string; addr: string } | null;
}

export interface AckEntry {
  id: string;
  session: string;
  version: number;
  /** Chain id of `version` as sent on that session: an ack of a history that was rewritten does not count. */
  chainId: string;
}

export interface AgentRecord {
  id: string;
  session: string;
  replica: string | null;
  /** Awaited for versions > since. */
  since: number;
  /** Highest version the current session acknowledged (0 when its ack belongs to a rewritten history). */
  applied: number;
  /** A live session holds it now. */
  connected: boolean;
  /** Connected, or its last session ended less than a lease ago (it stays awaited). */
  present: boolean;
  lastSeenMs: number;
}

/** A change doorbell and a control event: their readable forms and wire encodings are in shared/ (replica-wire.ts). */
export type EnvEvent = Doorbell;
export type { ControlEvent };

export type EnvListener = (event: EnvEvent) => void;
export type ControlListener = (event: ControlEvent) => void;

/** The log and the state: write groups, the change log, snapshots and scans, the head. */
export interface FactLog {
  /** Throws `idempotency_key_reused` when the key was used for a different request. */
  write(env: string, input: WriteInput): Promise<WriteOutcome>;
  /**
   * Group commit: the writes in order, each its own consecutive version (or
   * its idempotent replay), in one atomic step with one doorbell. A write
   * refused for itself (a reused Idempotency-Key) does not stop the others.
   */
  writeMany(env: string, inputs: readonly WriteInput[]): Promise<WriteResult[]>;
  head(env: string): Promise<EnvHead>;
  /** Like head, but creates the env's epoch if it has none yet. */
  ensureEpoch(env: string): Promise<EnvHead>;
  /** Versions after `after` in order: at most `limit`, and at most `maxBytes` of change JSON (always at least one). */
  changes(env: string, after: number, limit: number, maxBytes?: number): Promise<ChangesPage>;
  /** The whole state at one version, read at once (the HTTP snapshot; the fallback of a scan). */
  snapshot(env: string): Promise<Snapshot>;
  /**
   * One step of a fuzzy scan of the state (Redis HSCAN): start with cursor "0";
   * done when the returned cursor is "0" again. A fact present for the whole
   * scan comes at least once (maybe twice); one written or deleted meanwhile
   * may come with any of its values or not at all. Read the head before the
   * first step and replay the log from it to the head after the last one:
   * every op replaces or deletes a whole fact, so the replay makes it exact.
   * With `type`, only facts of that type (a step may then return none while
   * the cursor goes on).
   */
  scanState(env: string, cursor: string, count: number, type?: string): Promise<StateScan>;
  /** One fact's stored value (null when absent) and the head, read together. */
  fact(env: string, type: string, key: string): Promise<EnvHead & { valueJson: string | null }>;
  /** The head and the number of facts at it, read together (the check that a scanned snapshot is whole). */
  headWithCount(env: string): Promise<EnvHead & { facts: number }>;
  /** Every source's recorded position, by name. */
  sources(env: string): Promise<SourceRecord[]>;
}

/** The session registry: who is connected where, their leases, their acks and records (invariant 8). */
export interface SessionRegistry {
  /** The verdict on a hello, without registering anything (subscribers). */
  resume(env: string, req: ResumeRequest): Promise<Resume>;
  /** Registers the one live session of (env, agent id), replacing any older one, in one atomic step. */
  openSession(env: string, o: SessionOpen): Promise<SessionOpened>;
  /** Ends `session` if it is still the agent's; graceful (the agent said goodbye) drops its lease at once. */
  endSession(env: string, id: string, session: string, graceful: boolean, leaseMs: number): Promise<void>;
  /** Renews the leases of live sessions; returns the ids whose current session is another one (replaced elsewhere). */
  renewSessions(env: string, sessions: readonly (readonly [string, string])[], leaseMs: number): Promise<string[]>;
  /** Records acks of current sessions (others are ignored) and publishes `summary` on the control channel. */
  recordAcks(env: string, acks: readonly AckEntry[], summary?: ControlEvent): Promise<void>;
  /** The listing: every record with its details (last seen). */
  agents(env: string): Promise<AgentRecord[]>;
  /** The same records with only what the waiting rules read (cheaper: no last-seen details). */
  syncStates(env: string): Promise<AgentRecord[]>;
}

/** The event bus between replicas: change doorbells and control events. */
export interface EventBus {
  /** Change doorbells of one env from every replica. Resolves once the subscription is active. */
  subscribe(env: string, listener: EnvListener): Promise<() => Promise<void>>;
  subscribeControl(env: string, listener: ControlListener): Promise<() => Promise<void>>;
  publishControl(env: string, event: ControlEvent): Promise<void>;
  /** Called after the event channel was re-established: events may have been lost meanwhile. */
  onEventsReset(cb: () => void): void;
}

/** Monthly active users. */
export interface UsageLedger {
  /** Adds the keys to the env's set of `month` (YYYY-MM); a key already there counts once. */
  recordUsage(env: string, month: string, users: readonly string[]): Promise<void>;
  /** Distinct user keys recorded for `month`. */
  usage(env: string, month: string): Promise<number>;
}

/** Administration: the envs there are. */
export interface EnvAdmin {
  /** Names of the envs that have data (at most `limit`). */
  envs(limit: number): Promise<string[]>;
}

/**
 * A whole store: every concern, from one backend. Parts of the server take
 * only the concerns they use (the broadcaster a log and a bus, the status
 * routes usage and admin), so what each touches is visible in its signature.
 */
export interface FactStore extends FactLog, SessionRegistry, EventBus, UsageLedger, EnvAdmin {
  readonly kind: 'redis' | 'memory' | 'embedded';
  ping(): Promise<void>;
  close(): Promise<void>;
}
