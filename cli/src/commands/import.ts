import { createHash, type Hash } from 'node:crypto';
import { statSync } from 'node:fs';
import type { Op } from '@factsync/shared';
import { UsageError, printJson, writeOut, type CliContext } from '../context.js';
import { loadProgress, newProgress, progressPath, saveProgress, type ImportProgress } from '../import-progress.js';
import { progressBar } from '../progress.js';
import { withRetry } from '../retry.js';
import { csvRecords, jsonLines, type InputItem } from '../inputs.js';

export interface ImportOptions {
  format?: string;
  type?: string;
  key?: string;
  map?: string;
  chunkOps?: string;
  restart?: boolean;
}

/** Facts per write unless the server allows fewer: a version per 2,000 facts keeps change frames small for agents. */
const DEFAULT_CHUNK_OPS = 2000;
const DEFAULT_CHUNK_BYTES = 1024 * 1024;

/**
 * `import FILE`: the file's records as upserts (or its ops), in order, in
 * writes cut within the server's limits, each write one version. Resumable:
 * see import-progress.ts. A bad record stops the import before anything
 * after it is written; the writes before it stay, so fixing the line and
 * running the same command again continues from it.
 */
export async function importFile(c: CliContext, file: string, o: ImportOptions): Promise<void> {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new UsageError(`${file} is not a file`);
    size = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const format = o.format ?? (file.toLowerCase().endsWith('.csv') ? 'csv' : 'jsonl');
  if (format !== 'csv' && format !== 'jsonl') throw new UsageError(`--format ${format} is not one: use jsonl or csv`);
  if (format === 'csv' && !o.type) throw new UsageError('CSV import needs --type T (and --key COLUMN, the column that holds each fact\'s key)');
  if (format === 'jsonl' && (o.type || o.key || o.map)) throw new UsageError('--type, --key and --map describe CSV columns; JSON lines carry their own type and key');

  const [limits, head] = await Promise.all([c.server.limits(), c.server.head()]);
  let progress = o.restart ? undefined : loadProgress(file);
  if (progress && progress.env !== c.server.env) {
    throw new UsageError(`${progressPath(file)} is an import into env "${progress.env}", not "${c.server.env}"; delete it (or pass --restart) to import into "${c.server.env}" from the start`);
  }
  // The epoch, not the URL, says whether this is the store the progress was written to (a URL has aliases).
  if (progress && progress.epoch !== null && progress.epoch !== head.epoch) {
    c.err.write(`factsync: env "${c.server.env}" is not the store ${progressPath(file)} was written to (epoch ${progress.epoch}, now ${head.epoch ?? 'none'}): importing from the start\n`);
    progress = undefined;
  }
  if (progress?.done) {
    // Not a mistake: the same command run twice (a script, a retry) finds its work done.
    const v = progress.versions;
    await writeOut(c.err, `factsync: ${file} was imported already (${progress.facts} facts${v ? `, versions ${v[0]}..${v[1]}` : ''}); nothing written. Delete ${progressPath(file)} or pass --restart to import it again\n`);
    if (c.json) return printJson(c, { file, facts: progress.facts, writes: progress.seq, versions: progress.versions, already_imported: true });
    return;
  }
  const chunkOps = o.chunkOps !== undefined ? Number(o.chunkOps) : DEFAULT_CHUNK_OPS;
  if (!Number.isInteger(chunkOps) || chunkOps < 1) throw new UsageError(`--chunk-ops ${o.chunkOps} is not a whole number ≥ 1`);
  progress ??= newProgress(c.server.env, c.server.opts.url, { ops: Math.min(chunkOps, limits.max_ops_per_write), bytes: Math.min(DEFAULT_CHUNK_BYTES, Math.floor(limits.body_limit_bytes / 2)) });
  const p = progress;
  const resumedAt = p.items > 0 ? p.line : 0;

  const items: AsyncIterable<InputItem> = format === 'csv' ? csvRecords(file, { type: o.type!, key: o.key, map: o.map }) : jsonLines(file);
  const hash = createHash('sha256');
  const bar = progressBar(c, resumedAt > 0 ? `resuming at line ${resumedAt + 1}` : 'importing', size, 'facts');
  const started = Date.now();
  let seen = 0;
  let written = p.facts;
  let chunk: { ops: Op[]; bytes: number; items: number; line: number } = { ops: [], bytes: 2, items: 0, line: 0 };

  const flush = async (): Promise<void> => {
    if (chunk.ops.length === 0) return;
    const seq = p.seq + 1;
    const r = await withRetry(() => c.server.write(chunk.ops, { producer: { id: p.producer, seq } }));
    p.seq = seq;
    p.items = chunk.items;
    p.line = chunk.line;
    p.digest = digestOf(hash);
    p.facts += chunk.ops.length;
    p.versions = p.versions ? [p.versions[0], r.version] : [r.version, r.version];
    if (p.epoch === null) p.epoch = (await withRetry(() => c.server.head())).epoch;
    written = p.facts;
    saveProgress(file, p);
    chunk = { ops: [], bytes: 2, items: 0, line: 0 };
  };

  try {
    for await (const item of items) {
      seen++;
      if ('error' in item) {
        await flush();
        throw new UsageError(`${file} line ${item.line}: ${item.error}. Nothing from this line on was written${p.facts > 0 ? ` (the ${p.facts.toLocaleString('en-US')} facts before it were, up to version ${p.versions![1]})` : ''}; fix it and run the same command to continue`);
      }
      const text = JSON.stringify(item.op);
      // The chunk so far goes first: the digest saved with it covers exactly its records.
      if (seen > p.items && chunk.ops.length > 0 && (chunk.ops.length >= p.chunk.ops || chunk.bytes + text.length + 1 > p.chunk.bytes)) await flush();
      hash.update(text).update('\n');
      if (seen <= p.items) {
        // Written by an earlier run: only check that the file is the same up to there.
        if (seen === p.items && digestOf(hash) !== p.digest) {
          throw new UsageError(`${file} changed before line ${p.line}, where the interrupted import stopped; delete ${progressPath(file)} (or pass --restart) to import it from the start`);
        }
        continue;
      }
      chunk.ops.push(item.op);
      chunk.bytes += text.length + 1;
      chunk.items = seen;
      chunk.line = item.line;
      if ((seen & 255) === 0) bar.update(item.bytes, { count: written + chunk.ops.length });
    }
    if (seen < p.items) throw new UsageError(`${file} has fewer records (${seen}) than the interrupted import had written (${p.items}); delete ${progressPath(file)} (or pass --restart) to import it from the start`);
    await flush();
    bar.update(size, { count: written });
  } finally {
    bar.stop();
  }
  p.done = true;
  saveProgress(file, p);
  const seconds = (Date.now() - started) / 1000;
  const summary = { file, facts: p.facts, writes: p.seq, versions: p.versions, resumed_at_line: resumedAt || undefined };
  if (c.json) return printJson(c, summary);
  await writeOut(c.out, `imported ${p.facts.toLocaleString('en-US')} facts from ${file} in ${p.seq} writes${p.versions ? ` (versions ${p.versions[0]}..${p.versions[1]})` : ''}`
    + `${resumedAt ? `, resumed after line ${resumedAt}` : ''}, ${seconds.toFixed(1)} s\n`);
}

const digestOf = (h: Hash): string => h.copy().digest('hex');

export type { ImportProgress };
