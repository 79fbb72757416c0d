import type { Logger } from 'pino';
import { nanoid } from 'nanoid';
import { FactsyncError, PRODUCER_WINDOW, backoffDelayMs, formatWaitFor, type Op, type SyncStatus, type TimeoutPolicy, type WaitFor } from '@factsync/shared';
import { errorOf, type ServerClient } from './server-client.js';

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
  synced: boolean;
  /** This agent's applied version when the answer was sent. */
  applied: number;
  /** The server's sync status, when the wait was for other agents. */
  sync?: SyncStatus;
}

export interface ForwarderDeps {
  client: ServerClient;
  env: string;
  agentId: string;
  /** The replica the socket is on: known alive, so writes go there first. */
  preferred: () => URL;
  applied: () => number;
  waitApplied: (version: number, timeoutMs: number | null, signal?: AbortSignal) => Promise<boolean>;
  log: Logger;
}

/**
 * How long a write keeps being retried while the server answers "not now"
 * (502/503: Redis down, OOM, a failover) or cannot be reached: a budget in
 * time, not in attempts, since full-jitter backoff can spend five attempts in
 * a few hundred milliseconds.
 */
const RETRY_BUDGET_MS = 10_000;

/**
 * Forwards a write to the server and waits as asked. Every attempt of one write
 * carries the same producer sequence number (or the caller's Idempotency-Key),
 * so a retry after a lost response (or a failover to another replica) returns
 * the first version instead of writing twice.
 */
export class Forwarder {
  /**
   * This process as a producer: its writes carry consecutive sequence numbers
   * instead of a key each, so the server's idempotency state is one small
   * window per agent process, not one key per write for a day. A restart is a
   * new producer (its old window expires).
   */
  private readonly producerId: string;
  private nextSeq = 1;
  /** Sequence numbers not answered yet (a retry may still come for each). */
  private readonly inFlight = new Set<number>();
  private windowWaiters: (() => void)[] = [];

  constructor(private readonly d: ForwarderDeps) {
    this.producerId = `${d.agentId}.${nanoid(10)}`;
  }

  async write(ops: Op[], o: WriteOptions): Promise<WriteResult> {
    // A caller's own Idempotency-Key goes through as it is; otherwise the producer sequence.
    const seq = o.idempotencyKey === undefined ? await this.takeSeq() : 0;
    try {
      return await this.forward(ops, o, seq);
    } finally {
      if (seq > 0) this.release(seq);
    }
  }

  /**
   * The server remembers a producer's last PRODUCER_WINDOW sequence numbers:
   * a new one is handed out only while the oldest unanswered write (which may
   * still be retried) stays inside that window.
   */
  private async takeSeq(): Promise<number> {
    while (this.inFlight.size > 0 && this.nextSeq - Math.min(...this.inFlight) >= PRODUCER_WINDOW) {
      await new Promise<void>((r) => this.windowWaiters.push(r));
    }
    const seq = this.nextSeq++;
    this.inFlight.add(seq);
    return seq;
  }

  private release(seq: number): void {
    this.inFlight.delete(seq);
    const waiting = this.windowWaiters;
    this.windowWaiters = [];
    for (const w of waiting) w();
  }

  private async forward(ops: Op[], o: WriteOptions, seq: number): Promise<WriteResult> {
    const key = o.idempotencyKey ?? `${this.producerId}#${seq}`;
    const remote = o.waitFor.kind !== 'local';
    const headers: Record<string, string> = seq > 0
      ? { 'x-producer-id': this.producerId, 'x-producer-seq': String(seq) }
      : { 'idempotency-key': key };
    if (remote) {
      headers['x-wait-for'] = formatWaitFor(o.waitFor);
      headers['x-wait-timeout'] = o.timeoutMs === null ? '-1' : String(o.timeoutMs / 1000);
      headers['x-timeout-policy'] = o.policy;
    }
    // The server may hold the answer for the whole wait; give the request that long and then some.
    const requestMs = remote ? (o.timeoutMs === null ? 24 * 3600_000 : o.timeoutMs + 30_000) : 30_000;

    let answer: Awaited<ReturnType<ServerClient['request']>> | undefined;
    const giveUpAt = Date.now() + RETRY_BUDGET_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        answer = await this.d.client.request('POST', `/v1/envs/${this.d.env}/facts`, { body: { ops }, headers, preferred: this.d.preferred(), timeoutMs: requestMs });
        if (answer.status !== 503 && answer.status !== 502) break;
      } catch (e) {
        if (!(e instanceof FactsyncError) || Date.now() >= giveUpAt) throw e;
      }
      if (Date.now() >= giveUpAt) break;
      this.d.log.warn({ attempt, key }, 'write forwarding failed; retrying with the same sequence number');
      await new Promise((r) => setTimeout(r, backoffDelayMs(attempt, { initialMs: 100, maxMs: 2000 })));
    }
    if (!answer) throw new FactsyncError('upstream_unavailable', 'no factsync server accepted the write');
    const body = answer.body as { version?: number; sync?: SyncStatus };
    if (answer.status !== 200 || typeof body.version !== 'number') throw errorOf(answer);
    const version = body.version;
    if (remote) {
      const synced = body.sync?.synced ?? false;
      return { version, synced, applied: this.d.applied(), ...(body.sync ? { sync: body.sync } : {}) };
    }
    const synced = await this.d.waitApplied(version, o.timeoutMs, o.signal);
    if (!synced && o.policy === 'fail') {
      throw new FactsyncError('sync_timeout', `version ${version} was written but this agent has not applied it yet (applied ${this.d.applied()})`, { version });
    }
    return { version, synced, applied: this.d.applied() };
  }
}
