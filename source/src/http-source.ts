import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { FactsyncServerClient } from '@factsync/sdk';
import { parseOps, type Op, type WireOp } from '@factsync/shared';
import type { HttpSourceConfig } from './config.js';
import { digest, readOwned } from './owned.js';
import { SourceSink } from './sink.js';

export interface HttpSourceDeps {
  server: FactsyncServerClient;
  log: Logger;
  signal: AbortSignal;
}

/** A body that cannot be applied: nothing of it is written. */
class BodyError extends Error {}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => {
    clearTimeout(t);
    resolve();
  }, { once: true });
});

/**
 * An HTTP source: every `every`, a conditional GET (ETag, Last-Modified) of
 * JSON lines of facts; a 304 writes nothing; a 200 is streamed line by line
 * against the owned facts (never whole in memory) and the owned scopes made
 * equal to it in one version (reconcile's plan), so an equal body writes
 * nothing and a shorter one deletes. Its positions are increasing numbers.
 */
export class HttpSource {
  private readonly sink: SourceSink;
  private etag: string | undefined;
  private lastModified: string | undefined;
  private last = 0;
  private state: string | undefined;

  constructor(private readonly c: HttpSourceConfig, private readonly d: HttpSourceDeps) {
    this.sink = new SourceSink(d.server, c.name, d.log, d.signal);
  }

  async run(): Promise<void> {
    const recorded = await this.sink.recorded();
    this.last = recorded && /^\d{15}/.test(recorded.position) ? Number(recorded.position.slice(0, 15)) : 0;
    for (let failures = 0; !this.d.signal.aborted;) {
      try {
        await this.once();
        failures = 0;
        this.say('ok', 'info', `fetching ${this.c.url} works again`);
      } catch (e) {
        if (this.d.signal.aborted) break;
        failures++;
        // Said once per state: the same failure at every retry is not news.
        this.say(`error:${(e as Error).message}`, 'error', (e as Error).message);
      }
      await sleep(failures === 0 ? this.c.everyMs : Math.min(this.c.everyMs, 1000 * 2 ** Math.min(failures, 6)), this.d.signal);
    }
  }

  async resync(): Promise<void> {
    this.etag = undefined;
    this.lastModified = undefined;
    await this.once();
  }

  /** One fetch; resolves with what it wrote (0 ops: nothing). */
  async once(): Promise<{ status: number; ops: number }> {
    const headers: Record<string, string> = { accept: 'application/x-ndjson, application/jsonl, text/plain', ...(this.c.headers ?? {}) };
    if (this.etag) headers['if-none-match'] = this.etag;
    if (this.lastModified) headers['if-modified-since'] = this.lastModified;
    const res = await fetch(this.c.url, { headers, signal: this.d.signal });
    if (res.status === 304) return { status: 304, ops: 0 };
    if (!res.ok || !res.body) throw new BodyError(`source ${this.c.name}: GET ${this.c.url} answered ${res.status}; retrying`);
    const owned = await this.sink.retrying('read the owned facts', () => readOwned(this.d.server, this.c.owns));
    const ops: Op[] = [];
    const seen = new Map<string, Set<string>>();
    let n = 0;
    const lines = createInterface({ input: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), crlfDelay: Infinity });
    for await (const line of lines) {
      n++;
      if (line.trim() === '') continue;
      let fact: WireOp;
      try {
        const j = JSON.parse(line) as { type?: unknown; key?: unknown; value?: unknown };
        fact = { op: 'upsert', type: j.type as string, key: j.key as string, value: j.value as Record<string, unknown> };
      } catch (e) {
        throw new BodyError(`source ${this.c.name}: ${this.c.url} line ${n} is not JSON (${(e as Error).message}); nothing was written`);
      }
      const parsed = parseOps([fact]);
      if (!parsed.ok) throw new BodyError(`source ${this.c.name}: ${this.c.url} line ${n}: ${parsed.error.replace(/^ops\[0\]:? ?/, '')}; nothing was written`);
      const op = parsed.value[0]! as Extract<Op, { op: 'upsert' }>;
      const scope = this.c.owns.find((s) => s.type === op.type && (s.tenant === undefined || op.value.tenant === s.tenant));
      if (!scope) throw new BodyError(`source ${this.c.name}: ${this.c.url} line ${n}: ${op.type} "${op.key}" is in no scope this source owns (owns: ${this.c.owns.map((s) => s.type + (s.tenant ? `/${s.tenant}` : '')).join(', ')}); nothing was written`);
      let keys = seen.get(op.type);
      if (!keys) seen.set(op.type, (keys = new Set()));
      if (keys.has(op.key)) throw new BodyError(`source ${this.c.name}: ${this.c.url} line ${n}: ${op.type} "${op.key}" appears twice; nothing was written`);
      keys.add(op.key);
      if (owned.get(op.type)?.get(op.key) !== digest(op.value)) ops.push(op);
    }
    for (const [type, facts] of owned) for (const key of [...facts.keys()].sort()) if (!seen.get(type)?.has(key)) ops.push({ op: 'delete', type, key });
    if (ops.length > 0) {
      // Increasing whatever the clock does: after the recorded one.
      this.last = Math.max(Date.now(), this.last + 1);
      const r = await this.sink.write(ops, (part) => `${String(this.last).padStart(15, '0')}${part > 0 ? `.${String(part).padStart(4, '0')}` : ''}`);
      this.d.log.info({ source: this.c.name, ops: ops.length, version: r.version }, 'body applied');
    }
    // Remembered only once applied: a failed write is fetched (and compared) again.
    this.etag = res.headers.get('etag') ?? undefined;
    this.lastModified = res.headers.get('last-modified') ?? undefined;
    return { status: res.status, ops: ops.length };
  }

  private say(state: string, level: 'info' | 'error', message: string): void {
    if (this.state === state || (this.state === undefined && state === 'ok')) {
      this.state = state;
      return;
    }
    this.state = state;
    this.d.log[level]({ source: this.c.name }, message);
  }
}
