import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import {
  FactsyncError, WriteRequest, parseOps, parseWriteHeaders, type SyncStatus,
} from '@factsync/shared';
import { EnvParams, ErrorBody, WAIT_HEADERS, WriteResponse } from './schemas.js';
import { abortOnClose, requireCap, type RouteContext } from './context.js';

/** `POST /v1/envs/:env/facts`: one write, one version, optionally waiting for acks. */
export function factsRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post('/v1/envs/:env/facts', {
    onRequest: requireCap(ctx.auth, 'write'),
    schema: {
      summary: 'Apply a write as one new version',
      params: EnvParams,
      headers: Type.Object({
        'idempotency-key': Type.Optional(Type.String({ description: 'a retry with the same key returns the first version' })),
        'x-producer-id': Type.Optional(Type.String({ description: 'with X-Producer-Seq, instead of Idempotency-Key: one id per producer process' })),
        'x-producer-seq': Type.Optional(Type.String({ description: "the write's number in its producer's sequence (1, 2, ...); a retry of one of the last 128 returns its first version" })),
        ...WAIT_HEADERS,
      }),
      body: WriteRequest,
      response: { 200: WriteResponse, '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req, reply) => {
    const { env } = req.params as { env: string };
    const body = req.body as WriteRequest;

    if (body.ops.length > ctx.config.maxOpsPerWrite) {
      throw new FactsyncError('payload_too_large', `a write may carry at most ${ctx.config.maxOpsPerWrite} ops (got ${body.ops.length}); split it into several writes`);
    }
    const ops = parseOps(body.ops);
    if (!ops.ok) throw new FactsyncError('invalid_request', ops.error);

    // Parse the headers before writing: a bad header must not leave a write behind.
    const parsed = parseWriteHeaders(req.headers, { waitFor: { kind: 'all' }, waitSeconds: ctx.config.defaultWaitSeconds });
    if (!parsed.ok) throw new FactsyncError('invalid_request', parsed.error);
    const { idempotencyKey, producer, waitFor, timeoutMs, policy, wantsWait } = parsed.value;
    if (waitFor.kind === 'local') {
      throw new FactsyncError('invalid_request', 'X-Wait-For: local is only meaningful on a pdp-agent; the server accepts "all", an integer n, or agent ids');
    }

    // A write that will wait takes its wait slot first: over the limit it is refused before anything is written.
    const release = wantsWait && timeoutMs !== 0 ? ctx.waits.acquire(req.principal!.tokenIndex) : undefined;
    try {
      const endWrite = ctx.metrics.writeDuration.startTimer();
      const outcome = await ctx.commit.write(env, { ops: ops.value, ts: new Date().toISOString(), idempotencyKey, producer });
      endWrite();
      if (outcome.duplicate) {
        reply.header('idempotent-replayed', 'true');
        ctx.metrics.idempotentReplays.inc({ env });
      } else {
        ctx.metrics.writes.inc({ env });
        ctx.metrics.writeOps.inc({ env }, ops.value.length);
      }
      req.log.debug({ env, version: outcome.version, ops: ops.value.length, duplicate: outcome.duplicate }, 'write');
      if (!wantsWait) return { version: outcome.version };

      const endWait = ctx.metrics.syncWaitDuration.startTimer();
      let sync: SyncStatus;
      try {
        sync = await ctx.control.wait(env, outcome.version, waitFor, timeoutMs, abortOnClose(reply));
      } catch (e) {
        // The write has its version: a failed wait must not turn it into an error a client would retry.
        req.log.warn({ env, version: outcome.version, err: (e as Error).message }, 'could not wait for sync after the write');
        sync = { version: outcome.version, synced: false, acked: [], pending: [] };
      }
      endWait({ synced: String(sync.synced) });
      if (!sync.synced && policy === 'fail') {
        throw new FactsyncError('sync_timeout', `version ${outcome.version} was written but is not yet applied by ${sync.pending.join(', ') || 'enough agents'}`, { version: outcome.version, sync });
      }
      return { version: outcome.version, sync };
    } finally {
      release?.();
    }
  });
}
