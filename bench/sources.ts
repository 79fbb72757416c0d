import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createServerClient } from '@factsync/sdk';
import { spawnServer } from '../test/src/procs.js';
import { startPostgres } from '../test/src/postgres.js';
import { ADMIN, TOKENS } from './lib/harness.js';
import { LatencyRecorder, Progress, peakKiB } from './lib/stats.js';

/**
 * SOURCES: the Postgres source against a real cluster (wal_level=logical), a
 * real server process and the source as a CLI process. (1) commit → applied
 * by a follower of the env (the SDK's changes(), an agent's stream) at 200
 * transactions/s: p50/p99; (2) the first snapshot of 1M rows (100k quick):
 * time, the source's and the server's peak RSS; (3) beside it, OPAL's way on
 * the same table and changes: re-run the whole query and reconcile on every
 * change notification, CPU and bytes read per changed row, as a ratio to the
 * source's CPU per changed row.
 */
const QUICK = process.env.BENCH_QUICK === '1';
const ROWS = QUICK ? 100_000 : 1_000_000;
const TX_PER_S = 200;
const SECONDS = QUICK ? 5 : 15;
const OPAL_CHANGES = QUICK ? 20 : 50;
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const cpuMs = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
};

function startSource(file: string, env: string, url: string): { child: ChildProcess; err: () => string } {
  let err = '';
  const child = spawn(process.execPath, [join(ROOT, 'cli/bin/factsync.js'), 'source', 'run', file, '--env', env], {
    cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', FACTSYNC_URL: url, FACTSYNC_TOKEN: ADMIN, LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, err: () => err };
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function sources(): Promise<Record<string, unknown>> {
  const progress = new Progress('sources');
  const pgc = await startPostgres(['-c', 'shared_buffers=256MB', '-c', 'max_wal_size=4GB']);
  const server = await spawnServer({ AUTH_TOKENS: TOKENS, ENVS: 'bench', REDIS_URL: '' });
  const dir = mkdtempSync(join(tmpdir(), 'factsync-bench-sources-'));
  const children: ChildProcess[] = [];
  try {
    const admin = new pg.Client({ connectionString: pgc.url });
    await admin.connect();
    // The key is built from (user_email, role, tenant): unique, and carried by deletes (replica identity full).
    await admin.query('CREATE TABLE members (id bigint PRIMARY KEY, user_email text NOT NULL, role text NOT NULL, tenant text NOT NULL, UNIQUE (user_email, role, tenant))');
    await admin.query('ALTER TABLE members REPLICA IDENTITY FULL');
    progress.update(`inserting ${ROWS.toLocaleString('en-US')} rows`, true);
    await admin.query(`INSERT INTO members SELECT g, 'user' || g || '@example.com', CASE WHEN g % 3 = 0 THEN 'admin' ELSE 'viewer' END, 't' || (g % 100) FROM generate_series(1, ${ROWS}) g`);
    const file = join(dir, 'sources.yaml');
    writeFileSync(file, `sources:
  - name: bench
    postgres: { url: "${pgc.url}", publication: pub_bench, slot: slot_bench, create_publication: true, heartbeat: 5s }
    tables:
      - table: public.members
        type: role_assignment
        key: "{user_email}/{role}/{tenant}"
        value: { user: "{user_email}", role: "{role}", tenant: "{tenant}" }
`);
    const api = createServerClient({ url: server.url, token: ADMIN, env: 'bench' });

    // (2) The first snapshot.
    progress.update('first snapshot', true);
    const serverBefore = peakKiB(server.child.pid!);
    const t0 = Date.now();
    const src = startSource(file, 'bench', server.url);
    children.push(src.child);
    let sourcePeak = 0;
    const sampler = setInterval(() => {
      try {
        sourcePeak = Math.max(sourcePeak, peakKiB(src.child.pid!));
      } catch {
        // exited
      }
    }, 200);
    await until(() => {
      if (src.child.exitCode !== null) throw new Error(`the source exited ${src.child.exitCode}: ${src.err().slice(-1000)}`);
      return src.err().includes('snapshot applied');
    }, 'the first snapshot', 600_000);
    const snapshotMs = Date.now() - t0;
    clearInterval(sampler);
    const snapshot = {
      rows: ROWS, seconds: round(snapshotMs / 1000, 2), rowsPerSecond: Math.round(ROWS / (snapshotMs / 1000)),
      sourcePeakMiB: round(sourcePeak / 1024), serverPeakGrowthMiB: round((peakKiB(server.child.pid!) - serverBefore) / 1024),
    };
    progress.done(`snapshot of ${ROWS.toLocaleString('en-US')} rows: ${snapshot.seconds} s, source peak ${snapshot.sourcePeakMiB} MiB`);

    // (1) Commit → applied by a follower, at 200 transactions/s.
    const lat = new LatencyRecorder();
    const committedAt = new Map<string, number>();
    const follow = new AbortController();
    const head = (await api.head()).version;
    const following = (async () => {
      for await (const change of api.changes({ after: head, signal: follow.signal })) {
        const now = performance.now();
        for (const op of change.ops) {
          const t = committedAt.get(op.key);
          if (t !== undefined) {
            lat.record(now - t);
            committedAt.delete(op.key);
          }
        }
      }
    })().catch(() => undefined);
    const db = new pg.Client({ connectionString: pgc.url });
    await db.connect();
    const cpuBefore = cpuMs(src.child.pid!);
    const total = TX_PER_S * SECONDS;
    const start = performance.now();
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / TX_PER_S;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const id = ROWS + 1 + i;
      await db.query('INSERT INTO members VALUES ($1, $2, $3, $4)', [id, `new${id}@example.com`, 'viewer', 't1']);
      committedAt.set(`new${id}@example.com/viewer/t1`, performance.now());
      if (i % 200 === 0) progress.update(`commit → applied: ${i}/${total} transactions`);
    }
    await until(() => committedAt.size === 0, 'every transaction applied', 60_000);
    const sourceCpuPerRowMs = (cpuMs(src.child.pid!) - cpuBefore) / total;
    follow.abort();
    await following;
    const latency = lat.summary();
    progress.done(`commit → applied at ${TX_PER_S} tx/s: p50 ${latency.p50} ms, p99 ${latency.p99} ms`);

    // (3) OPAL's way: every change notification re-reads the whole table and reconciles it.
    progress.update('the whole query per change', true);
    let previous = new Map<string, string>();
    const readAll = async () => {
      const r = await db.query('SELECT user_email, role, tenant FROM members');
      const facts = new Map<string, string>();
      let bytes = 0;
      for (const row of r.rows as { user_email: string; role: string; tenant: string }[]) {
        const v = JSON.stringify({ user: row.user_email, role: row.role, tenant: row.tenant });
        bytes += v.length;
        facts.set(`${row.user_email}/${row.role}/${row.tenant}`, v);
      }
      return { facts, bytes };
    };
    previous = (await readAll()).facts;
    const cpu0 = process.cpuUsage();
    let bytesRead = 0;
    let changed = 0;
    for (let i = 0; i < OPAL_CHANGES; i++) {
      await db.query(`UPDATE members SET role = 'admin' WHERE id = $1`, [i + 1]);
      const { facts, bytes } = await readAll();
      bytesRead += bytes;
      for (const [k, v] of facts) if (previous.get(k) !== v) changed++;
      for (const k of previous.keys()) if (!facts.has(k)) changed++;
      previous = facts;
    }
    const used = process.cpuUsage(cpu0);
    const opalCpuPerRowMs = (used.user + used.system) / 1000 / OPAL_CHANGES;
    await db.end();
    await admin.end();
    src.child.kill('SIGTERM');
    progress.done(`the whole query per change: ${round(opalCpuPerRowMs)} ms CPU per changed row (the source: ${round(sourceCpuPerRowMs, 3)} ms)`);
    return {
      snapshot,
      commitToApplied: { transactionsPerSecond: TX_PER_S, transactions: total, latencyMs: latency },
      perChangedRow: {
        source: { cpuMs: round(sourceCpuPerRowMs, 3) },
        wholeQuery: { cpuMs: round(opalCpuPerRowMs, 1), bytesRead: Math.round(bytesRead / OPAL_CHANGES), changesSeen: changed, note: 'CPU of the re-reading client only (Postgres\'s own work for each full scan not counted)' },
        cpuRatio: round(opalCpuPerRowMs / Math.max(sourceCpuPerRowMs, 0.001), 0),
      },
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await server.stop();
    await pgc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
