import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { GroupCommit, Journal, JournaledEnv, JournaledState, ProducerEntry } from './journal.js';

/** `PRAGMA application_id` of a factsync data file ("fsnc"): a SQLite file of another program is refused, not changed. */
const APPLICATION_ID = 0x66736e63;
const SCHEMA_VERSION = 1;
export const DATA_FILE = 'factsync.db';

/** A data directory that cannot be used; the message is the one line start-up prints. */
export class DataDirError extends Error {}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS envs (env TEXT PRIMARY KEY, epoch TEXT NOT NULL, version INTEGER NOT NULL, id TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (env TEXT NOT NULL, version INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY (env, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (env TEXT NOT NULL, field TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (env, field)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (env TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, hash TEXT NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (env, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS producers (env TEXT NOT NULL, producer TEXT NOT NULL, max INTEGER NOT NULL, seqs TEXT NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (env, producer)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sources (env TEXT NOT NULL, name TEXT NOT NULL, position TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (env, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (env TEXT NOT NULL, month TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (env, month, user)) WITHOUT ROWID;
`;

export interface SqliteJournalOptions {
  dataDir: string;
  now?: () => number;
  /** Called with how far loading got (facts read), for a progress line on big stores. */
  onLoadProgress?: (facts: number) => void;
  /** FULL (the default: survives a power cut); NORMAL only for measuring what FULL costs (bench P8). */
  synchronous?: 'FULL' | 'NORMAL';
}

/**
 * The durable half of the embedded store: one SQLite file under DATA_DIR,
 * through better-sqlite3 (synchronous, so a commit is on disk before the
 * write that caused it is answered).
 *
 * - WAL journal with `synchronous = FULL`: every group commit is one
 *   transaction whose WAL frames are fsynced before COMMIT returns, so an
 *   answered write survives `kill -9` and a power cut. (`NORMAL` would survive
 *   `kill -9` too, but may lose the last commits on a power cut.)
 * - `locking_mode = EXCLUSIVE`, taken at open: one server per data
 *   directory; a second one is refused at start-up with one line.
 * - A file that is not a factsync store (another program's SQLite file, a
 *   torn or foreign file) is refused at start-up with one line, never changed.
 */
export function openSqliteJournal(o: SqliteJournalOptions): { journal: Journal; state: JournaledState } {
  const now = o.now ?? Date.now;
  mkdirSync(o.dataDir, { recursive: true });
  const path = join(o.dataDir, DATA_FILE);
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: 0 });
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${o.synchronous ?? 'FULL'}`);
    // Take the write lock now: a second server on this directory fails here, not at its first write.
    db.exec('BEGIN IMMEDIATE; COMMIT');
  } catch (e) {
    const m = (e as Error).message;
    if (/locked|busy/i.test(m)) throw new DataDirError(`DATA_DIR ${o.dataDir} is in use by another factsync server: run one server per data directory, or give this one another DATA_DIR`);
    throw new DataDirError(`DATA_DIR ${o.dataDir}: ${path} is not a factsync store (${m}); move it away or choose another DATA_DIR`);
  }
  try {
    const appId = db.pragma('application_id', { simple: true }) as number;
    const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }).n;
    if (appId === 0 && tables === 0) {
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    } else if (appId !== APPLICATION_ID) {
      throw new DataDirError(`DATA_DIR ${o.dataDir}: ${path} is a database of another program; move it away or choose another DATA_DIR`);
    } else if ((db.pragma('user_version', { simple: true }) as number) > SCHEMA_VERSION) {
      throw new DataDirError(`DATA_DIR ${o.dataDir}: ${path} was written by a newer factsync; run that version, or choose another DATA_DIR`);
    }
    db.exec(SCHEMA);
  } catch (e) {
    db.close();
    if (e instanceof DataDirError) throw e;
    throw new DataDirError(`DATA_DIR ${o.dataDir}: ${path} is damaged (${(e as Error).message}); restore it from a backup or choose another DATA_DIR`);
  }

  let state: JournaledState;
  try {
    state = load(db, now(), o.onLoadProgress);
  } catch (e) {
    db.close();
    throw new DataDirError(`DATA_DIR ${o.dataDir}: ${path} is damaged (${(e as Error).message}); restore it from a backup or choose another DATA_DIR`);
  }

  const q = {
    env: db.prepare('INSERT INTO envs (env, epoch, version, id) VALUES (?, ?, ?, ?) ON CONFLICT (env) DO UPDATE SET epoch = excluded.epoch, version = excluded.version, id = excluded.id'),
    change: db.prepare('INSERT OR REPLACE INTO log (env, version, json) VALUES (?, ?, ?)'),
    trim: db.prepare('DELETE FROM log WHERE env = ? AND version <= ?'),
    put: db.prepare('INSERT OR REPLACE INTO state (env, field, json) VALUES (?, ?, ?)'),
    remove: db.prepare('DELETE FROM state WHERE env = ? AND field = ?'),
    key: db.prepare('INSERT OR REPLACE INTO idempotency (env, key, version, hash, expires) VALUES (?, ?, ?, ?, ?)'),
    producer: db.prepare('INSERT OR REPLACE INTO producers (env, producer, max, seqs, expires) VALUES (?, ?, ?, ?, ?)'),
    user: db.prepare('INSERT OR IGNORE INTO usage (env, month, user) VALUES (?, ?, ?)'),
    source: db.prepare('INSERT OR REPLACE INTO sources (env, name, position, version, updated_at) VALUES (?, ?, ?, ?, ?)'),
  };
  const expire = {
    keys: db.prepare('DELETE FROM idempotency WHERE expires <= ?'),
    producers: db.prepare('DELETE FROM producers WHERE expires <= ?'),
  };
  // Expired idempotency records leave the file as they leave memory: a sweep every 1,024 commits keeps it bounded.
  let commits = 0;
  const commit = db.transaction((env: string, c: GroupCommit) => {
    if (++commits % 1024 === 0) {
      expire.keys.run(now());
      expire.producers.run(now());
    }
    q.env.run(env, c.epoch, c.version, c.id);
    for (const ch of c.changes) q.change.run(env, ch.version, ch.json);
    if (c.trimmedThrough > 0) q.trim.run(env, c.trimmedThrough);
    for (const [field, json] of c.facts) (json === null ? q.remove.run(env, field) : q.put.run(env, field, json));
    for (const [key, e] of c.idempotency) q.key.run(env, key, e.version, e.hash, e.expiresMs);
    // In the same transaction as the changes: a source's position is never ahead of, or behind, its facts.
    for (const [name, r] of c.sources) q.source.run(env, name, r.position, r.version, r.updatedAt);
    for (const [id, p] of c.producers) q.producer.run(env, id, p.max, JSON.stringify([...p.seqs].map(([s, x]) => [s, x.version, x.hash])), p.expiresMs);
  });
  const usage = db.transaction((env: string, month: string, users: readonly string[]) => {
    for (const u of users) q.user.run(env, month, u);
  });

  return {
    state,
    journal: {
      commit: (env, c) => commit(env, c),
      // The epoch alone, before any write: version 0 at the genesis id.
      epoch: (env, epoch) => void q.env.run(env, epoch, 0, ''),
      usage: (env, month, users) => usage(env, month, users),
      close: () => db.close(),
    },
  };
}

function load(db: Database.Database, t: number, progress?: (facts: number) => void): JournaledState {
  // Expired idempotency records are dropped at start-up (a running store ignores them).
  db.prepare('DELETE FROM idempotency WHERE expires <= ?').run(t);
  db.prepare('DELETE FROM producers WHERE expires <= ?').run(t);
  const envs = new Map<string, JournaledEnv>();
  for (const r of db.prepare('SELECT env, epoch, version, id FROM envs').all() as { env: string; epoch: string; version: number; id: string }[]) {
    envs.set(r.env, { version: r.version, epoch: r.epoch, id: r.id, log: [], state: new Map(), idempotency: new Map(), producers: new Map(), sources: new Map() });
  }
  const of = (env: string) => {
    const e = envs.get(env);
    if (!e) throw new Error(`rows of env "${env}", which has no head`);
    return e;
  };
  for (const r of db.prepare('SELECT env, version, json FROM log ORDER BY env, version').iterate() as Iterable<{ env: string; version: number; json: string }>) {
    of(r.env).log.push({ version: r.version, json: r.json });
  }
  let n = 0;
  for (const r of db.prepare('SELECT env, field, json FROM state').raw().iterate() as Iterable<[string, string, string]>) {
    of(r[0]).state.set(r[1], r[2]);
    if (++n % 100_000 === 0) progress?.(n);
  }
  for (const r of db.prepare('SELECT env, key, version, hash, expires FROM idempotency').all() as { env: string; key: string; version: number; hash: string; expires: number }[]) {
    of(r.env).idempotency.set(r.key, { version: r.version, hash: r.hash, expiresMs: r.expires });
  }
  for (const r of db.prepare('SELECT env, producer, max, seqs, expires FROM producers').all() as { env: string; producer: string; max: number; seqs: string; expires: number }[]) {
    const seqs: ProducerEntry['seqs'] = new Map((JSON.parse(r.seqs) as [number, number, string][]).map(([s, version, hash]) => [s, { version, hash }]));
    of(r.env).producers.set(r.producer, { max: r.max, seqs, expiresMs: r.expires });
  }
  for (const r of db.prepare('SELECT env, name, position, version, updated_at FROM sources').all() as { env: string; name: string; position: string; version: number; updated_at: string }[]) {
    of(r.env).sources.set(r.name, { name: r.name, position: r.position, version: r.version, updatedAt: r.updated_at });
  }
  const usage = new Map<string, Map<string, Set<string>>>();
  for (const r of db.prepare('SELECT env, month, user FROM usage').raw().iterate() as Iterable<[string, string, string]>) {
    let months = usage.get(r[0]);
    if (!months) usage.set(r[0], (months = new Map()));
    let set = months.get(r[1]);
    if (!set) months.set(r[1], (set = new Set()));
    set.add(r[2]);
  }
  for (const [env, e] of envs) {
    // The head and the log must agree: a log that ends anywhere but the head is not this store's.
    const last = e.log[e.log.length - 1];
    if (last && last.version !== e.version) throw new Error(`env "${env}": the log ends at ${last.version}, the head is ${e.version}`);
  }
  return { envs, usage };
}
