import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import {
  FactsyncError, WireOp, WriteRequest, parseOps, parseWriteHeaders, typeWarnings, type SyncStatus, type WaitFor,
} from '@factsync/shared';
import { EnvParams, ErrorBody, PRODUCER_HEADERS, WAIT_HEADERS, WriteResponse } from './schemas.js';
import { abortOnClose, requireCap, type RouteContext } from './context.js';
import type { WriteInput, WriteOutcome } from '../store/fact-store.js';

/** A write body; empty only for a source recording its position (checked in the route, which knows the headers). */
const SourceWriteRequest = Type.Object(
  { ops: Type.Array(WireOp, { description: 'the operations of one version, applied in order (none: a source recording its position)' }) },
  { additionalProperties: false },
);

/** `POST /v1/envs/:env/facts`: one write, one version, optionally waiting for acks. */
export function factsRoutes(app: TypedApp, ctx: RouteContext): void {
  /** A write's outcome in the metrics: a new version with its ops, or a replay. */
  const counted = (env: string, outcome: WriteOutcome, ops: number): void => {
    if (outcome.duplicate) ctx.metrics.idempotentReplays.inc({ env });
    else {
      ctx.metrics.writes.inc({ env });
      ctx.metrics.writeOps.inc({ env }, ops);
    }
  };

  /** A wait for agent ids the env has no record of (never connected, or gone for AGENT_RECORD_TTL_MS): a typo, most likely. */
  const unseenAgents = async (env: string, waitFor: WaitFor, pending: readonly string[]): Promise<string[]> => {
    if (waitFor.kind !== 'ids' || pending.length === 0) return [];
    try {
      // Advice, never in the answer's way: a store that is slow or closing (a shutdown answering waiters) gets a second.
      const records = await Promise.race([ctx.store.syncStates(env), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('slow')), 1000).unref())]);
      const seen = new Set(records.map((r) => r.id));
      return pending.filter((id) => !seen.has(id)).slice(0, 8).map((id) =>
        `no agent "${id}" has ever connected to env "${env}": the wait lasts until it does or times out; X-Wait-For takes "all", a number of agents, or the ids GET /v1/envs/${env}/agents lists`);
    } catch {
      return [];
    }
  };

  app.post('/v1/envs/:env/facts', {
    onRequest: requireCap(ctx, 'write'),
    schema: {
      summary: 'Apply a write as one new version',
      params: EnvParams,
      headers: Type.Object({
        'idempotency-key': Type.Optional(Type.String({ description: 'a retry with the same key returns the first version' })),
        'x-source': Type.Optional(Type.String({ description: 'a source\'s name: with X-Source-Position, the write applies once per position' })),
        'x-source-position': Type.Optional(Type.String({ description: 'where the source is; a position not after the recorded one applies nothing (replayed)' })),
        ...PRODUCER_HEADERS,
        ...WAIT_HEADERS,
      }),
      body: SourceWriteRequest,
      response: { 200: WriteResponse, '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req, reply) => {
    const { env } = req.params;
    const body = req.body;

    if (body.ops.length > ctx.config.maxOpsPerWrite) {
      throw new FactsyncError('payload_too_large', `a write may carry at most ${ctx.config.maxOpsPerWrite} ops (got ${body.ops.length}); split it into several writes`);
    }
    const ops = parseOps(body.ops);
    if (!ops.ok) throw new FactsyncError('invalid_request', ops.error);

    // Parse the headers before writing: a bad header must not leave a write behind.
    const parsed = parseWriteHeaders(req.headers, { waitFor: { kind: 'all' }, waitSeconds: ctx.config.defaultWaitSeconds });
    if (!parsed.ok) throw new FactsyncError('invalid_request', parsed.error);
    const { idempotencyKey, producer, waitFor, timeoutMs, policy, wantsWait, source } = parsed.value;
    if (ops.value.length === 0 && !source) {
      throw new FactsyncError('invalid_request', 'ops is empty: a write carries at least one op (only a source recording its position, with X-Source and X-Source-Position, may send none)');
    }
    if (waitFor.kind === 'local') {
      throw new FactsyncError('invalid_request', 'X-Wait-For: local is only meaningful on a pdp-agent; the server accepts "all", an integer n, or agent ids');
    }

    // A write that will wait takes its wait slot first: over the limit it is refused before anything is written.
    const release = wantsWait && timeoutMs !== 0 ? ctx.waits.acquire(req.principal!.tokenIndex) : undefined;
    try {
      const endWrite = ctx.metrics.writeDuration.startTimer();
      const outcome = await ctx.commit.write(env, { ops: ops.value, ts: new Date().toISOString(), idempotencyKey, producer, source });
      endWrite();
      counted(env, outcome, ops.value.length);
      if (source) ctx.sourceWrote(env);
      if (outcome.duplicate) reply.header('idempotent-replayed', 'true');
      req.log.debug({ env, version: outcome.version, ops: ops.value.length, duplicate: outcome.duplicate }, 'write');
      const warnings = typeWarnings(ops.value);
      const replayed = source && outcome.duplicate ? { replayed: true as const } : {};
      if (!wantsWait) return { version: outcome.version, epoch: outcome.epoch, ...replayed, ...(warnings.length > 0 ? { warnings } : {}) };

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
      // Only a wait that did not end can have waited for a typo; asked after it, so an agent that connected meanwhile is not one.
      if (!sync.synced) warnings.push(...await unseenAgents(env, waitFor, sync.pending));
      if (!sync.synced && policy === 'fail') {
        throw new FactsyncError('sync_timeout', `version ${outcome.version} was written but is not yet applied by ${sync.pending.join(', ') || 'enough agents'}`, { version: outcome.version, sync, ...(warnings.length > 0 ? { warnings } : {}) });
      }
      return { version: outcome.version, epoch: outcome.epoch, ...replayed, sync, ...(warnings.length > 0 ? { warnings } : {}) };
    } finally {
      release?.();
    }
  });

  /**
   * `POST /v1/envs/:env/writes`: several writes of one producer, in order, each
   * its own version (an agent forwarding the local writes that queued while
   * its previous request was in flight). Write i carries X-Producer-Seq + i, so
   * a retried batch is answered from the producer's window write by write. A
   * write refused for itself (bad ops, a reused number) does not stop the
   * others. Answers at once: agents wait for their own apply locally.
   */
  app.post('/v1/envs/:env/writes', {
    onRequest: requireCap(ctx, 'write'),
    schema: {
      summary: 'Apply several writes in order, each its own version (a producer batch)',
      params: EnvParams,
      headers: Type.Object(PRODUCER_HEADERS),
      body: Type.Object({ writes: Type.Array(WriteRequest, { minItems: 1, maxItems: MAX_BATCH_WRITES }) }, { additionalProperties: false }),
      response: { 200: BatchResponse, '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req) => {
    const { env } = req.params;
    const { writes } = req.body;
    const parsed = parseWriteHeaders(req.headers, { waitFor: { kind: 'all' }, waitSeconds: 0 });
    if (!parsed.ok) throw new FactsyncError('invalid_request', parsed.error);
    const { producer, wantsWait, idempotencyKey, source } = parsed.value;
    if (source) throw new FactsyncError('invalid_request', 'a source writes one transaction at a time to /facts with X-Source and X-Source-Position; a batch takes none');
    if (wantsWait) throw new FactsyncError('invalid_request', 'a batch is answered without waiting; send writes that wait one by one to /facts, or wait on the agent');
    if (idempotencyKey !== undefined) throw new FactsyncError('invalid_request', 'a batch takes X-Producer-Id and X-Producer-Seq (write i is number seq + i), not an Idempotency-Key');
    const total = writes.reduce((n, w) => n + w.ops.length, 0);
    if (total > ctx.config.maxOpsPerWrite) {
      throw new FactsyncError('payload_too_large', `a batch may carry at most ${ctx.config.maxOpsPerWrite} ops in all (got ${total}); send fewer writes per batch`);
    }
    ctx.metrics.writeBatchSize.observe(writes.length);
    const ts = new Date().toISOString();
    const results: BatchResult[] = new Array(writes.length);
    const inputs: { at: number; input: WriteInput }[] = [];
    writes.forEach((w, i) => {
      const ops = parseOps(w.ops);
      if (!ops.ok) {
        results[i] = new FactsyncError('invalid_request', `writes[${i}]: ${ops.error}`).toJSON();
        return;
      }
      inputs.push({ at: i, input: { ops: ops.value, ts, producer: producer && { id: producer.id, seq: producer.seq + i } } });
    });
    const endWrite = ctx.metrics.writeDuration.startTimer();
    const answers = await Promise.allSettled(ctx.commit.writeAll(env, inputs.map((x) => x.input)));
    endWrite();
    answers.forEach((a, j) => {
      const { at, input } = inputs[j]!;
      if (a.status === 'rejected') {
        const e = a.reason;
        // The store as a whole failed (503 and the like): the batch is retried as a whole.
        if (!(e instanceof FactsyncError) || e.status >= 500) throw e;
        results[at] = e.toJSON();
        return;
      }
      counted(env, a.value, input.ops.length);
      results[at] = a.value.duplicate ? { version: a.value.version, epoch: a.value.epoch, replayed: true } : { version: a.value.version, epoch: a.value.epoch };
    });
    return { results };
  });
}

/** Most writes in one batch (the group commit's own cap). */
export const MAX_BATCH_WRITES = 256;

type BatchResult = { version: number; epoch: string; replayed?: boolean } | { error: string; message: string };
const BatchResponse = Type.Object({
  results: Type.Array(Type.Object({
    version: Type.Optional(Type.Integer({ minimum: 1 })),
    epoch: Type.Optional(Type.String()),
    replayed: Type.Optional(Type.Boolean()),
    error: Type.Optional(Type.String()),
    message: Type.Optional(Type.String()),
  }), { description: 'one per write, in order: its version, or why it alone was refused' }),
});
