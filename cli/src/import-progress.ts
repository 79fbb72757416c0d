import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { UsageError } from './context.js';

/**
 * Where an import of one file stands, kept next to the file
 * (`FILE.factsync-import.json`, rewritten atomically after every write the
 * server answered). A rerun with the same file continues after `items`: the
 * write that was in flight when it stopped is sent again with the same
 * producer number, which the server answers with its first version instead
 * of applying it twice.
 */
export interface ImportProgress {
  format: 1;
  env: string;
  server: string;
  /** X-Producer-Id of this import: the server remembers its last 128 numbers. */
  producer: string;
  /** The env's epoch once the first write landed: a store that lost its data (or a fresh one) makes this progress meaningless. */
  epoch: string | null;
  /** The last producer number the server answered. */
  seq: number;
  /** Records of the file written so far (blank lines not counted). */
  items: number;
  /** The file line of the last record written. */
  line: number;
  /** SHA-256 of the ops written so far: the file must not have changed before `items`. */
  digest: string;
  /** Chunk limits: a rerun cuts the same writes, so a retried one is the same write. */
  chunk: { ops: number; bytes: number };
  facts: number;
  versions: [number, number] | null;
  done: boolean;
}

export const progressPath = (file: string): string => `${file}.factsync-import.json`;

export function loadProgress(file: string): ImportProgress | undefined {
  const p = progressPath(file);
  if (!existsSync(p)) return undefined;
  let v: ImportProgress;
  try {
    v = JSON.parse(readFileSync(p, 'utf8')) as ImportProgress;
  } catch {
    throw new UsageError(`${p} is not an import progress file (it may be torn); delete it to import ${file} from the start`);
  }
  if (v.format !== 1 || typeof v.producer !== 'string' || typeof v.items !== 'number') {
    throw new UsageError(`${p} is not an import progress file of this version; delete it to import ${file} from the start`);
  }
  return v;
}

export function newProgress(env: string, server: string, chunk: { ops: number; bytes: number }): ImportProgress {
  return {
    format: 1, env, server, producer: `import-${randomBytes(8).toString('hex')}`, epoch: null, seq: 0, items: 0, line: 0,
    digest: '', chunk, facts: 0, versions: null, done: false,
  };
}

export function saveProgress(file: string, p: ImportProgress): void {
  const path = progressPath(file);
  // Whole or not at all: a kill between the write and the rename leaves the previous progress.
  writeFileSync(`${path}.tmp`, `${JSON.stringify(p, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}
