import type { FastifyReply, FastifyRequest } from 'fastify';
import { ENV_PATTERN, FactsyncError } from '@factsync/shared';
import { permit, type Authenticator, type Capability } from '../auth.js';
import type { GroupCommit } from '../store/group-commit.js';
import type { FactStore } from '../store/fact-store.js';
import type { ControlPlane } from '../control/control-plane.js';
import type { ServerConfig } from '../config.js';
import type { ServerMetrics } from '../metrics.js';
import type { SnapshotReads } from '../ws/snapshot-reads.js';
import type { TokenSlots } from '../token-slots.js';
import type { EnvDirectory } from '../env-directory.js';

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
  /** Which envs exist (a typo is a 404, not a new env). */
  envs: EnvDirectory;
  /** A source wrote to this env through this replica (factsync_source_lag_seconds reads its sources). */
  sourceWrote(env: string): void;
}

const envRe = new RegExp(ENV_PATTERN);

/**
 * An onRequest guard: authenticate first (401), then check the env name (400),
 * then the role and env of the token (403), then that the env exists (404).
 * Runs before the body is read, so an unauthenticated client cannot make us
 * parse a large body.
 */
export function requireCap(ctx: Pick<RouteContext, 'auth' | 'envs'>, cap: Capability) {
  return async (req: FastifyRequest): Promise<void> => {
    const principal = await ctx.auth.authenticate(req.headers.authorization);
    const env = (req.params as { env?: string }).env ?? '';
    if (!envRe.test(env)) {
      throw new FactsyncError('invalid_request', `env "${env.slice(0, 80)}" is not valid: use 1-64 of A-Z a-z 0-9 _ -`);
    }
    req.principal = permit(principal, env, cap);
    await ctx.envs.require(env, principal.envs);
  };
}

/** Aborts when the client goes away, so a long-poll stops waiting for nobody. */
export function abortOnClose(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  return ac.signal;
}

/**
 * Answers JSON text built from stored change and fact texts: a million facts
 * are never parsed into objects and serialised again. The route's response
 * schema still documents the shape; the text is sent as it is.
 */
export function sendJsonText(reply: FastifyReply, text: string): FastifyReply {
  return reply.type('application/json').serializer((s: string) => s).send(text);
}
