import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Fact } from '@factsync/shared';

export interface PersistedState {
  env: string;
  version: number;
  epoch: string | null;
  /** Chain id at `version`; absent in files written before ids existed. */
  id?: string | null;
  facts: Fact[];
}

const FILE = 'factsync-state.json';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * `DATA_DIR/factsync-state.json`: the first line is the sha256 of the rest, so a
 * torn or edited file is detected and never served. Written to a temp file,
 * fsynced, then renamed over the old one, so a crash leaves the old or the new
 * file, never half of one.
 */
export async function saveState(dir: string, s: PersistedState): Promise<void> {
  await mkdir(dir, { recursive: true });
  const body = JSON.stringify(s);
  const tmp = join(dir, `${FILE}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(`${sha256(body)}\n${body}`);
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

export async function loadState(dir: string, env: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(join(dir, FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    return { kind: 'invalid', reason: (e as Error).message };
  }
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
  if (s.env !== env) return { kind: 'invalid', reason: `file is for env "${s.env}", this agent serves "${env}"` };
  return { kind: 'ok', state: s };
}
