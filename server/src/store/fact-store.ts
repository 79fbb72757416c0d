import type { Op } from '@factsync/shared';

/**
 * The one interface the server talks to for durable state and cross-replica
 * events. Two implementations, `redis-store` and `memory-store`, pass the same
 * contract suite (test/integration/store-contract.test.ts).
 */

export interface EnvHead {
  version: number;
  /** Random id of the env's log; changes when the store lost its data (invariant 5). */
  epoch: string | null;
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
}

export interface WriteOutcome {
  version: number;
  epoch: string;
  /** True when the idempotency key was seen before: nothing was applied. */
  duplicate: boolean;
}

export type ChangesPage =
  | { truncated: false; head: number; epoch: string | null; changes: RawChange[] }
  | { truncated: true; head: number; epoch: string | null };

export interface Snapshot {
  version: number;
  epoch: string | null;
  facts: RawFact[];
}

export interface AgentRecord {
  id: string;
  /** Highest version the agent acknowledged (cumulative). */
  applied: number;
  /** Head when its current connection registered: it counts for `all` of versions > since. */
  since: number;
  connected: boolean;
  lastSeenMs: number;
  replica: string | null;
}

export interface AgentConnect {
  id: string;
  /** Unique per socket, so a late disconnect of an old socket cannot evict a newer one. */
  conn: string;
  replica: string;
  leaseMs: number;
}

export type EnvEvent =
  | { t: 'change'; v: number; e: string; c?: string }
  | { t: 'acks'; a: Record<string, number> }
  | { t: 'presence'; id: string; connected: boolean; conn: string; since?: number };

export type EnvListener = (event: EnvEvent) => void;

export interface FactStore {
  readonly kind: 'redis' | 'memory';
  write(env: string, input: WriteInput): Promise<WriteOutcome>;
  head(env: string): Promise<EnvHead>;
  /** Like head, but creates the env's epoch if it has none yet. */
  ensureEpoch(env: string): Promise<EnvHead>;
  changes(env: string, after: number, limit: number): Promise<ChangesPage>;
  snapshot(env: string): Promise<Snapshot>;

  connectAgent(env: string, c: AgentConnect): Promise<EnvHead & { since: number }>;
  disconnectAgent(env: string, id: string, conn: string): Promise<void>;
  renewLeases(env: string, ids: readonly string[], leaseMs: number): Promise<void>;
  recordAcks(env: string, acks: ReadonlyMap<string, number>): Promise<void>;
  agents(env: string): Promise<AgentRecord[]>;

  /** Events of one env from every replica. Resolves once the subscription is active. */
  subscribe(env: string, listener: EnvListener): Promise<() => Promise<void>>;
  /** Called after the event channel was re-established: events may have been lost meanwhile. */
  onEventsReset(cb: () => void): void;

  /** Names of the envs that have data (at most `limit`). */
  envs(limit: number): Promise<string[]>;

  ping(): Promise<void>;
  close(): Promise<void>;
}

export const isValidEvent = (x: unknown): x is EnvEvent => {
  if (typeof x !== 'object' || x === null) return false;
  const e = x as Record<string, unknown>;
  switch (e.t) {
    case 'change':
      return typeof e.v === 'number' && typeof e.e === 'string' && (e.c === undefined || typeof e.c === 'string');
    case 'acks':
      return typeof e.a === 'object' && e.a !== null && Object.values(e.a).every((v) => typeof v === 'number');
    case 'presence':
      return typeof e.id === 'string' && typeof e.connected === 'boolean' && typeof e.conn === 'string';
    default:
      return false;
  }
};
