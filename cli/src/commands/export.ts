import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { factField, type Fact } from '@factsync/shared';
import { replayBetween, scanScope, type ScanBounds, type Scope } from '@factsync/sdk';
import { UsageError, writeOut, type CliContext } from '../context.js';
import { progressBar, type Progress } from '../progress.js';
import { withRetry } from '../retry.js';

/** Scans that raced writes (the count did not come out) before the last one, which removes duplicates by key. */
const ATTEMPTS = 3;

/**
 * `export`: the env's facts (or a type's, or a type's in one tenant) at one
 * version, as JSON lines. The server is read page by page; the pages go to a
 * temporary file, not to memory; the log between the first and the last page
 * is then replayed over them, which makes the result the state at the last
 * page's version exactly (the same method agents' snapshots use). For a whole
 * env the result is checked against the server's fact count at that version.
 */
export async function exportFacts(c: CliContext, o: { type?: string; tenant?: string; output?: string }): Promise<void> {
  if (o.tenant !== undefined && o.type === undefined) throw new UsageError('--tenant filters a type: add --type T');
  const scope: Scope = { type: o.type, tenant: o.tenant };
  const dir = mkdtempSync(join(tmpdir(), 'factsync-export-'));
  const out = o.output ? createWriteStream(o.output) : c.out;
  try {
    for (let attempt = 1; ; attempt++) {
      const tmp = join(dir, `scan-${attempt}`);
      const { bounds, lines } = await scanToFile(c, scope, tmp);
      if (bounds.from.epoch !== null && bounds.to.epoch !== bounds.from.epoch) continue;
      const touched = await withRetry(() => replayBetween(c.server, scope, bounds));
      const whole = scope.type === undefined;
      const last = attempt >= ATTEMPTS || !whole;
      // Nothing written during the scan and the count matches: the scanned lines are the state.
      if (whole && touched.size === 0 && lines === bounds.to.count) {
        await copyLines(tmp, out);
        return await finish(c, out, o.output, lines, bounds);
      }
      const emitted = await emit(tmp, touched, last ? out : null, last);
      if (last || emitted === bounds.to.count) {
        if (!last) await emit(tmp, touched, out, false);
        return await finish(c, out, o.output, emitted, bounds);
      }
      // A fact came twice (a Redis rehash under the scan): scan again.
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function scanToFile(c: CliContext, scope: Scope, path: string): Promise<{ bounds: ScanBounds; lines: number }> {
  const file = createWriteStream(path);
  let lines = 0;
  let bar: Progress | undefined;
  try {
    const scan = scanScope(c.server, scope);
    for (;;) {
      const step = await scan.next();
      if (step.done) {
        await new Promise<void>((res, rej) => file.end((e?: Error | null) => (e ? rej(e) : res())));
        return { bounds: step.value, lines };
      }
      // The env's count is the total of a whole export; a type's share of it is unknown, so no bar.
      bar ??= progressBar(c, 'exporting', scope.type === undefined ? step.value.envCount : 0, 'facts');
      for (const f of step.value.facts) {
        lines++;
        await writeOut(file, `${JSON.stringify(f)}\n`);
      }
      bar.update(lines, { count: lines });
    }
  } finally {
    bar?.stop();
  }
}

/**
 * One pass over the scanned lines: those the log did not touch (each key
 * once when `dedupe`), then the touched facts as the log left them. Returns
 * how many facts that is; writes them to `out` unless it is null (counting).
 */
async function emit(tmp: string, touched: Map<string, Fact | null>, out: NodeJS.WritableStream | null, dedupe: boolean): Promise<number> {
  let n = 0;
  const seen = dedupe ? new Set<string>() : undefined;
  for await (const line of createInterface({ input: createReadStream(tmp, { encoding: 'utf8' }), crlfDelay: Infinity })) {
    if (!line) continue;
    if (touched.size > 0 || seen) {
      const f = JSON.parse(line) as Fact;
      const field = factField(f.type, f.key);
      if (touched.has(field)) continue;
      if (seen) {
        if (seen.has(field)) continue;
        seen.add(field);
      }
    }
    n++;
    if (out) await writeOut(out, `${line}\n`);
  }
  for (const f of touched.values()) {
    if (f === null) continue;
    n++;
    if (out) await writeOut(out, `${JSON.stringify(f)}\n`);
  }
  return n;
}

async function copyLines(tmp: string, out: NodeJS.WritableStream): Promise<void> {
  for await (const chunk of createReadStream(tmp)) await writeOut(out, chunk as unknown as string);
}

async function finish(c: CliContext, out: NodeJS.WritableStream, output: string | undefined, facts: number, bounds: ScanBounds): Promise<void> {
  if (output) await new Promise<void>((res, rej) => (out as ReturnType<typeof createWriteStream>).end((e?: Error | null) => (e ? rej(e) : res())));
  c.err.write(`exported ${facts.toLocaleString('en-US')} facts of env "${c.server.env}" at version ${bounds.to.version}${output ? ` to ${output}` : ''}\n`);
}
