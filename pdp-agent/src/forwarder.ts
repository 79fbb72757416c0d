import type { Logger } from 'pino';
import {
  FactsyncError, backoffDelayMs, formatWaitFor, isErrorCode, parseWriteReply, parseWritesReply, type Op, type SyncStatus, type TimeoutPolicy, type WaitFor,
} from '@factsync/shared';
import { errorOf, type ServerClient } from './server-client.js';
import { ProducerWindow } from './producer-window.js';

export interface WriteOptions {
  waitFor: WaitFor;
  /** null = wait until synced. */
  timeoutMs: number | null;
  policy: TimeoutPolicy;
  idempotencyKey?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface WriteResult {
  version: number;
  /** The epoch `version` belongs to: `version.epoch` is the write's consistency token for `at_least`. */
  epoch: string;
  synced: boolean;
  /** This agent's applied version in the write's epoch when the answer was sent (0 while its state is of another). */
  applied: number;
  /** The server's sync status, when the wait was for other agents. */
  sync?: SyncStatus;
  /** What was probably not meant (the write was applied as sent). */
  warnings?: string[];
}

export interface ForwarderDeps {
  client: ServerClient;
  env: string;
  agentId: string;
  /** The replica the socket is on: known alive, so writes go there first. */
  preferred: () => URL;
  /** This agent's applied version if its state is of `epoch`, else 0: a version of another epoch says nothing. */
  appliedIn: (epoch: string) => number;
  /** The server answered in this epoch (the agent resyncs if its state is of another). */
  heardEpoch: (epoch: string) => void;
  waitApplied: (version: number, timeoutMs: number | null, signal: AbortSignal | undefined, epoch: string) => Promise<boolean>;
  log: Logger;
}

/**
 * How long a write keeps being retried while the server answers "not now"
 * (502/503: Redis down, OOM, a failover) or cannot be reached: a budget in
 * time, not in attempts, since full-jitter backoff can spend five attempts in
 * a few hundred milliseconds.
 */
const RETRY_BUDGET_MS = 10_000;

/** A write waiting for its place in a batch. */
interface Queued {
  ops: Op[];
  resolve: (written: Written) => void;
  reject: (e: unknown) => void;
}

/** A version and the epoch it belongs to, as the server answered. */
interface Written {
  version: number;
  epoch: string;
}

/** Most writes and ops in one forwarded batch (the server's group commit caps). */
const BATCH_WRITES = 256;
const BATCH_OPS = 1000;

/**
 * A write the retry budget could not place: say what was done and what the
 * caller can know. A request that reached a server before the connection
 * failed may have been applied; a new request is a new write, so the safe
 * retry is one with an Idempotency-Key.
 */
function gaveUp(e: FactsyncError): FactsyncError {
  if (e.code !== 'upstream_unavailable') return e;
  return new FactsyncError('upstream_unavailable',
    `${e.message}; retried for ${RETRY_BUDGET_MS / 1000} s: the write may or may not have been applied. To retry it safely, send it again with an Idempotency-Key header (a retry with the same key applies it at most once)`);
}

/**
 * Forwards writes to the server and waits as asked. Writes that wait for this
 * agent's own apply (the default) queue behind the request in flight and go
 * together in the next (`POST /writes`, each its own version): under load one
 * round trip and one store call carry many writes, and a lone write still goes
 * at once. Writes that wait on the server go one by one.
 */
export class Forwarder {
  private readonly producer: ProducerWindow;
  /** Local-wait writes that arrived while a batch was in flight: they go together in the next one. */
  private queue: Queued[] = [];
  private sending = false;

  constructor(private readonly d: ForwarderDeps) {
    this.producer = new ProducerWindow(d.agentId);
  }

  async write(ops: Op[], o: WriteOptions): Promise<WriteResult> {
    const remote = o.waitFor.kind !== 'local';
    if (remote || o.idempotencyKey !== undefined) return this.forwardOne(ops, o);
    // Waiting for this agent's own apply (the default): the server answers at once, so writes
    // that queue behind one in flight share the next request (one round trip, one store call).
    const written = await new Promise<Written>((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      if (!this.sending) void this.sendBatches();
    });
    return this.afterLocal(written, o);
  }

  private async afterLocal({ version, epoch }: Written, o: WriteOptions): Promise<WriteResult> {
    this.d.heardEpoch(epoch);
    const synced = await this.d.waitApplied(version, o.timeoutMs, o.signal, epoch);
    if (!synced && o.policy === 'fail') {
      throw new FactsyncError('sync_timeout', `version ${version} (epoch ${epoch}) was written but this agent has not applied it yet (applied ${this.d.appliedIn(epoch)} of that epoch)`, { version, epoch });
    }
    return { version, epoch, synced, applied: this.d.appliedIn(epoch) };
  }

  /** One batch in flight at a time; each takes what queued meanwhile, within the producer window. */
  private async sendBatches(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        while (this.producer.room === 0) await this.producer.whenFree();
        let n = 0;
        let ops = 0;
        const max = Math.min(BATCH_WRITES, this.producer.room);
        while (n < this.queue.length && n < max && (n === 0 || ops + this.queue[n]!.ops.length <= BATCH_OPS)) ops += this.queue[n++]!.ops.length;
        const batch = this.queue.splice(0, n);
        const first = this.producer.take(n);
        try {
          await this.sendBatch(batch, first);
        } catch (e) {
          for (const q of batch) q.reject(e);
        } finally {
          this.producer.release(first, n);
        }
      }
    } finally {
      this.sending = false;
    }
  }

  private async sendBatch(batch: Queued[], firstSeq: number): Promise<void> {
    const headers = { 'x-producer-id': this.producer.id, 'x-producer-seq': String(firstSeq) };
    const answer = await this.withRetries(firstSeq, () => this.d.client.request('POST', `/v1/envs/${this.d.env}/writes`, {
      body: { writes: batch.map((q) => ({ ops: q.ops })) }, headers, preferred: this.d.preferred(), timeoutMs: 30_000,
    }));
    if (answer.status === 413 && batch.length > 1) {
      // Too large together (the server's body or ops limit), not necessarily alone: each on its own,
      // with the number it already has (nothing of a refused request was written).
      for (let i = 0; i < batch.length; i++) await this.sendBatch([batch[i]!], firstSeq + i).catch((e: unknown) => batch[i]!.reject(e));
      return;
    }
    if (answer.status !== 200) throw errorOf(answer);
    const parsed = parseWritesReply(answer.body);
    if (!parsed.ok || parsed.value.results.length !== batch.length) {
      // The writes may exist (the server answered 200): the caller may retry safely, the numbers make it idempotent.
      throw new FactsyncError('upstream_unavailable', `${parsed.ok ? 'the server answered a different number of writes' : parsed.error}; the writes may have been applied, and retrying is safe`);
    }
    const results = parsed.value.results;
    batch.forEach((q, i) => {
      const r = results[i]!;
      if ('version' in r) q.resolve({ version: r.version, epoch: r.epoch });
      else q.reject(new FactsyncError(isErrorCode(r.error) ? r.error : 'invalid_request', r.message, r));
    });
  }

  /**
   * Sends until the server answers something other than 502/503, within the
   * retry budget. Every attempt carries the same sequence numbers, so a retry
   * after a lost answer (or a failover to another replica) gets the first
   * versions instead of writing twice.
   */
  private async withRetries<T extends { status: number }>(seq: number | string, send: () => Promise<T>): Promise<T> {
    let answer: T | undefined;
    const giveUpAt = Date.now() + RETRY_BUDGET_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        answer = await send();
        if (answer.status !== 503 && answer.status !== 502) break;
      } catch (e) {
        if (!(e instanceof FactsyncError)) throw e;
        if (Date.now() >= giveUpAt) throw gaveUp(e);
      }
      if (Date.now() >= giveUpAt) break;
      this.d.log.warn({ attempt, seq }, 'write forwarding failed; retrying with the same sequence numbers');
      await new Promise((r) => setTimeout(r, backoffDelayMs(attempt, { initialMs: 100, maxMs: 2000 })));
    }
    if (!answer) throw gaveUp(new FactsyncError('upstream_unavailable', 'no factsync server accepted the write'));
    return answer;
  }

  /** A write that waits on the server (for other agents) or carries the caller's own Idempotency-Key. */
  private async forwardOne(ops: Op[], o: WriteOptions): Promise<WriteResult> {
    const seq = o.idempotencyKey === undefined ? await this.producer.takeOne() : 0;
    try {
      const remote = o.waitFor.kind !== 'local';
      const headers: Record<string, string> = seq > 0
        ? { 'x-producer-id': this.producer.id, 'x-producer-seq': String(seq) }
        : { 'idempotency-key': o.idempotencyKey! };
      if (remote) {
        headers['x-wait-for'] = formatWaitFor(o.waitFor);
        headers['x-wait-timeout'] = o.timeoutMs === null ? '-1' : String(o.timeoutMs / 1000);
        headers['x-timeout-policy'] = o.policy;
      }
      // The server may hold the answer for the whole wait; give the request that long and then some.
      const requestMs = remote ? (o.timeoutMs === null ? 24 * 3600_000 : o.timeoutMs + 30_000) : 30_000;
      const answer = await this.withRetries(seq || o.idempotencyKey!, () =>
        this.d.client.request('POST', `/v1/envs/${this.d.env}/facts`, { body: { ops }, headers, preferred: this.d.preferred(), timeoutMs: requestMs }));
      if (answer.status !== 200) throw errorOf(answer);
      const parsed = parseWriteReply(answer.body);
      if (!parsed.ok) throw new FactsyncError('upstream_unavailable', `${parsed.error}; the write may have been applied, and retrying is safe`);
      const body = parsed.value;
      if (!remote) return this.afterLocal(body, o);
      this.d.heardEpoch(body.epoch);
      const synced = body.sync?.synced ?? false;
      return {
        version: body.version, epoch: body.epoch, synced, applied: this.d.appliedIn(body.epoch),
        ...(body.sync ? { sync: body.sync } : {}), ...(body.warnings ? { warnings: body.warnings } : {}),
      };
    } finally {
      if (seq > 0) this.producer.release(seq);
    }
  }
}
