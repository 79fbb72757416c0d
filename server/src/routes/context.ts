import type { FastifyReply, FastifyRequest } from 'fastify';
import { ENV_PATTERN, FactsyncError } from '@factsync/shared';
import { permit, type Authenticator, type Capability } from '../auth.js';
import type { GroupCommit } from '../store/group-commit.js';
import type { FactStore } from '../store/fact-store.js';
import type { ControlPlane } from '../control/control-plane.js';
import type { ServerConfig } from '../config.js';
import type { ServerMetrics } from '../metrics.js';
import type { SnapshotReads } from '../ws/snapshot-reads.js';

/** What route plugins need; passed explicitly so each can be built against real parts in tests. */
export interface RouteContext {
  store: FactStore;
  /** Writes go through here: grouped per env while one is in flight (group commit). */
  commit: GroupCommit;
  control: ControlPlane;
  auth: Authenticator;
  config: Readonly<ServerConfig>;
  metrics: ServerMetrics;
  /** Snapshot reads of this replica: shared per env, bounded by MAX_SNAPSHOT_STREAMS. */
  snapshots: SnapshotReads;
  /** Long-polls per token. */
  waits: TokenSlots;
}

const envRe = new RegExp(ENV_PATTERN);

/**
 * An onRequest guard: authenticate first (401), then check the env name (400),
 * then the role and env of the token (403). Runs before the body is read, so an
 * unauthenticated client cannot make us parse a large body.
 */
export function requireCap(auth: Authenticator, cap: Capability) {
  return async (req: FastifyRequest): Promise<void> => {
    const principal = auth.authenticate(req.headers.authorization);
    const env = (req.params as { env?: string }).env ?? '';
    if (!envRe.test(env)) {
      throw new FactsyncError('invalid_request', `env "${env.slice(0, 80)}" is not valid: use 1-64 of A-Z a-z 0-9 _ -`);
    }
    req.principal = permit(principal, env, cap);
  };
}

/**
 * Open requests of one kind per token on a replica (long-polls: MAX_WAITS_PER_TOKEN;
 * status streams: MAX_STREAMS_PER_TOKEN): each holds a socket and a waiter, so a
 * token may hold at most `max` at once; one more is a 429.
 */
export class TokenSlots {
  private readonly held = new Map<number, number>();
  constructor(private readonly max: number, private readonly what: string, private readonly variable: string) {}

  acquire(tokenIndex: number): () => void {
    const n = this.held.get(tokenIndex) ?? 0;
    if (n >= this.max) throw new FactsyncError('too_many_connections', `this token already has ${n} ${this.what} on this replica (${this.variable}); wait for some to finish`);
    this.held.set(tokenIndex, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(tokenIndex) ?? 1) - 1;
      if (left <= 0) this.held.delete(tokenIndex);
      else this.held.set(tokenIndex, left);
    };
  }
}

/** Aborts when the client goes away, so a long-poll stops waiting for nobody. */
export function abortOnClose(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return ac.signal;
}
