import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Fact } from '@factsync/shared';

export interface PersistedState {
  env: string;
  version: number;
  epoch: string | null;
  /** Chain id at `version`; absent in files written before ids existed. */
  id?: string | null;
  /** The tenants whose share this is (scoped agents); absent or null: the whole env. */
  tenants?: readonly string[] | null;
  facts: Fact[];
}

const scopeText = (t: readonly string[] | null | undefined): string => (t ? `the share of tenants ${[...t].sort().join(',')}` : 'the whole env');

const FILE = 'factsync-state.json';
const FORMAT = 2;
/** Facts serialised between two yields to the event loop. */
const CHUNK = 2000;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

/**
 * `DATA_DIR/factsync-state.json`, format 2: a header line
 * `{"format":2,"env","version","epoch","id","facts":N}`, one fact per line, and
 * a last line with the sha256 of every byte before it, so a torn or edited file
 * is detected and never served. Written in chunks that yield to the event loop
 * between them (a million facts are never one string, and checks keep being
 * answered while it saves), to a temp file, fsynced, then renamed over the old
 * one: a crash leaves the old or the new file, never half of one.
 *
 * `facts` must not change while the save runs: the agent passes a copy of the
 * fact references (values are never mutated in place, only replaced).
 */
export async function saveState(dir: string, s: PersistedState): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `${FILE}.tmp`);
  const fh = await open(tmp, 'w');
  const hash = createHash('sha256');
  const put = async (text: string) => {
    hash.update(text);
    await fh.write(text);
  };
  try {
    await put(`${JSON.stringify({ format: FORMAT, env: s.env, version: s.version, epoch: s.epoch, id: s.id ?? null, facts: s.facts.length, ...(s.tenants ? { tenants: s.tenants } : {}) })}\n`);
    for (let i = 0; i < s.facts.length; i += CHUNK) {
      let chunk = '';
      for (const f of s.facts.slice(i, i + CHUNK)) chunk += `${JSON.stringify(f)}\n`;
      await put(chunk);
      await yieldToLoop();
    }
    await fh.write(hash.digest('hex'));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, FILE));
}

export type LoadResult =
  | { kind: 'none' }
  | { kind: 'ok'; state: PersistedState }
  | { kind: 'invalid'; reason: string };

export async function loadState(dir: string, env: string, tenants?: readonly string[]): Promise<LoadResult> {
  const path = join(dir, FILE);
  let first: string;
  try {
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(80);
      const { bytesRead } = await fh.read(buf, 0, 80, 0);
      first = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    return { kind: 'invalid', reason: (e as Error).message };
  }
  const loaded = first.startsWith('{"format":') ? await loadLines(path) : await loadLegacy(path);
  if (loaded.kind !== 'ok') return loaded;
  if (loaded.state.env !== env) return { kind: 'invalid', reason: `file is for env "${loaded.state.env}", this agent serves "${env}"` };
  // Another scope's facts are not this one's share (AGENT_TENANTS changed): start over from a snapshot of this share.
  const held = scopeText(loaded.state.tenants);
  if (held !== scopeText(tenants)) return { kind: 'invalid', reason: `file holds ${held}, this agent serves ${scopeText(tenants)}` };
  return loaded;
}

/** Format 2, read line by line: the file is never one string. */
async function loadLines(path: string): Promise<LoadResult> {
  const hash = createHash('sha256');
  let header: Omit<PersistedState, 'facts'> & { format: number; facts: number } | undefined;
  const facts: Fact[] = [];
  let pending: string | undefined; // the last line seen: the checksum if nothing follows it
  try {
    for await (const line of createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity })) {
      if (pending !== undefined) {
        hash.update(`${pending}\n`);
        if (header === undefined) header = JSON.parse(pending) as typeof header;
        else facts.push(JSON.parse(pending) as Fact);
      }
      pending = line;
    }
  } catch (e) {
    return { kind: 'invalid', reason: `unreadable: ${(e as Error).message}` };
  }
  if (header === undefined || pending === undefined) return { kind: 'invalid', reason: 'no header or checksum line' };
  if (hash.digest('hex') !== pending) return { kind: 'invalid', reason: 'checksum mismatch (truncated or modified file)' };
  if (header.format !== FORMAT || typeof header.version !== 'number' || header.facts !== facts.length) return { kind: 'invalid', reason: 'unexpected shape' };
  return { kind: 'ok', state: { env: header.env, version: header.version, epoch: header.epoch, id: header.id, tenants: header.tenants ?? null, facts } };
}

/** Format 1 (a checksum line, then one JSON document), as written before format 2. */
async function loadLegacy(path: string): Promise<LoadResult> {
  const text = await readFile(path, 'utf8');
  const nl = text.indexOf('\n');
  if (nl !== 64) return { kind: 'invalid', reason: 'no checksum line' };
  const body = text.slice(nl + 1);
  if (sha256(body) !== text.slice(0, nl)) return { kind: 'invalid', reason: 'checksum mismatch (truncated or modified file)' };
  let s: PersistedState;
  try {
    s = JSON.parse(body) as PersistedState;
  } catch (e) {
    return { kind: 'invalid', reason: `not JSON: ${(e as Error).message}` };
  }
  if (typeof s.version !== 'number' || !Array.isArray(s.facts)) return { kind: 'invalid', reason: 'unexpected shape' };
  return { kind: 'ok', state: s };
}
