import type { Logger } from 'pino';
import { FactsyncClientError, type FactsyncServerClient } from '@factsync/sdk';
import { backoffDelayMs, type LimitsReply, type Op } from '@factsync/shared';

/** What the server answered for a source's write (or its last part). */
export interface Recorded {
  version: number;
  replayed: boolean;
}

/** A refusal the source cannot retry its way past (a bad op, a bad token): it stops and says so. */
export class SinkRefused extends Error {}

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => {
    clearTimeout(t);
    resolve();
  }, { once: true });
});

/**
 * Where a source's writes go: the server, with X-Source and X-Source-Position
 * on every write, so each position is applied once however often it is sent
 * (a retry, a restart that streams a transaction again). While the server or
 * its store is away it waits and retries for as long as it takes: nothing is
 * confirmed to the source system meanwhile, so nothing is lost.
 */
export class SourceSink {
  private limits: LimitsReply | undefined;
  private failing: string | undefined;

  constructor(private readonly server: FactsyncServerClient, readonly name: string, private readonly log: Logger, private readonly signal?: AbortSignal) {}

  /** The position the server recorded for this source, if any. */
  async recorded(): Promise<{ position: string; version: number } | undefined> {
    const all = await this.retrying('read the recorded position', () => this.server.sources());
    const mine = all.find((s) => s.name === this.name);
    return mine && { position: mine.position, version: mine.version };
  }

  /**
   * One source transaction: one version, or consecutive versions when it
   * exceeds the server's limits, part i at `position(i)` (the split is
   * deterministic, so a transaction sent again is cut the same way and its
   * parts already recorded are replays). No ops: the position alone.
   */
  async write(ops: readonly Op[], position: (part: number) => string): Promise<Recorded> {
    const parts = await this.split(ops);
    let last: Recorded = { version: 0, replayed: true };
    for (let i = 0; i < parts.length; i++) {
      const r = await this.retrying('write', () => this.server.write(parts[i]!, { source: { name: this.name, position: position(i) } }));
      last = { version: r.version, replayed: r.replayed === true };
    }
    return last;
  }

  private async split(ops: readonly Op[]): Promise<Op[][]> {
    if (ops.length === 0) return [[]];
    this.limits ??= await this.retrying('read the limits', () => this.server.limits());
    const maxBytes = Math.floor(this.limits.body_limit_bytes * 0.9);
    const parts: Op[][] = [];
    let part: Op[] = [];
    let bytes = 10;
    for (const op of ops) {
      const size = Buffer.byteLength(JSON.stringify(op)) + 1;
      if (part.length > 0 && (part.length >= this.limits.max_ops_per_write || bytes + size > maxBytes)) {
        parts.push(part);
        part = [];
        bytes = 10;
      }
      part.push(op);
      bytes += size;
    }
    parts.push(part);
    return parts;
  }

  /** Retries what the server cannot do now (unreachable, 5xx, 429); a 4xx is the source's mistake and stops it. */
  async retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await fn();
        if (this.failing) this.log.info({ source: this.name }, `the server answers again; ${this.name} continues`);
        this.failing = undefined;
        return r;
      } catch (e) {
        const transient = e instanceof FactsyncClientError && (e.code === 'network_error' || e.status >= 500 || e.status === 429);
        if (!transient) throw new SinkRefused(`source ${this.name}: the server refused to ${what}: ${(e as Error).message}`);
        if (this.signal?.aborted) throw e;
        // Said once per outage, not at every retry.
        if (this.failing === undefined) this.log.warn({ source: this.name, err: (e as Error).message }, `cannot ${what}; retrying until the server answers (nothing is confirmed to the source meanwhile)`);
        this.failing = (e as Error).message;
        await sleep(backoffDelayMs(attempt, { initialMs: 100, maxMs: 5000 }), this.signal);
      }
    }
  }
}
