import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { spawnServer, type Proc } from '../test/src/procs.js';
import { ADMIN, Harness, TOKENS } from './lib/harness.js';
import { Progress, peakKiB, resetPeak, rssKiB } from './lib/stats.js';

/**
 * CLI: `factsync import`, `export` and `reconcile` of a million facts against
 * a real server process on Redis and on the embedded store, each beside a
 * baseline of the same run: import beside a bare loop that POSTs the same
 * chunks (what the CLI adds: validation, digests, progress); export beside
 * `GET /snapshot` (the env read at once); reconcile (1% of a 1M-fact scope
 * changed) beside the import of the same file (writing everything instead of
 * the difference). Peak RSS of the CLI process and the server's peak growth
 * (VmHWM, reset before each step).
 */
const QUICK = process.env.BENCH_QUICK === '1';
const FACTS = QUICK ? 100_000 : 1_000_000;
const CHUNK = 2000;
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const mib = (kib: number) => round(kib / 1024);

const user = (i: number, changed = false) => JSON.stringify({
  type: 'user', key: `user-${i}@example.com`,
  value: { email: `user-${i}@example.com`, first_name: `First${i}`, last_name: `Last${i}`, attributes: { dept: changed ? 'moved' : `d${i % 50}`, level: i % 7, tenant_group: `g${i % 100}` } },
});

async function writeFile(path: string, n: number, line: (i: number) => string | null): Promise<number> {
  const out = createWriteStream(path);
  for (let i = 0; i < n; i++) {
    const l = line(i);
    if (l !== null && !out.write(`${l}\n`)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
  return statSync(path).size;
}

/** Runs the CLI as a child process; its peak RSS is sampled from /proc until it exits. */
async function runCli(args: string[], env: Record<string, string>, stdoutTo?: string): Promise<{ ms: number; peakMiB: number; out: string; err: string }> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [join(ROOT, 'cli/bin/factsync.js'), ...args], {
    cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATA_DIR: '/nonexistent', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let peak = 0;
  const sample = setInterval(() => {
    try {
      peak = Math.max(peak, peakKiB(child.pid!));
    } catch { /* exited */ }
  }, 50);
  if (stdoutTo) child.stdout.pipe(createWriteStream(stdoutTo));
  else child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  clearInterval(sample);
  if (code !== 0) throw new Error(`factsync ${args.join(' ')} exited ${code}: ${err.slice(-500)}`);
  return { ms: Date.now() - t0, peakMiB: mib(peak), out, err };
}

/** The baseline of import: the same chunks POSTed one after another, nothing checked. */
async function bareImport(url: string, env: string, file: string): Promise<number> {
  const t0 = Date.now();
  let ops: string[] = [];
  const send = async () => {
    const res = await fetch(`${url}/v1/envs/${env}/facts`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: `{"ops":[${ops.join(',')}]}` });
    if (!res.ok) throw new Error(`bare import: ${res.status} ${await res.text()}`);
    ops = [];
  };
  for await (const line of createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })) {
    ops.push(`{"op":"upsert",${line.slice(1)}`);
    if (ops.length === CHUNK) await send();
  }
  if (ops.length) await send();
  return Date.now() - t0;
}

async function serverStep<T>(server: Proc, f: () => Promise<T>): Promise<T & { serverPeakGrowthMiB: number }> {
  const pid = server.child.pid!;
  const before = rssKiB(pid);
  resetPeak(pid);
  const r = await f();
  return { ...r, serverPeakGrowthMiB: mib(peakKiB(pid) - before) };
}

export async function cli(): Promise<Record<string, unknown>> {
  const prog = new Progress('CLI');
  const h = new Harness();
  const dir = mkdtempSync(join(tmpdir(), 'factsync-bench-cli-'));
  try {
    await h.startRedis();
    prog.update(`writing a ${FACTS.toLocaleString('en-US')}-fact file`, true);
    const file = join(dir, 'users.jsonl');
    const bytes = await writeFile(file, FACTS, (i) => user(i));
    // 1% different: 0.5% changed, 0.25% gone, 0.25% new.
    const truth = join(dir, 'truth.jsonl');
    const q = FACTS / 400;
    await writeFile(truth, FACTS + q, (i) => (i < 2 * q ? user(i, true) : i < 3 * q ? null : user(i)));
    prog.done(`files: ${mib(bytes / 1024)} MiB of facts, reconcile file with 1% changed`);

    const results: Record<string, unknown> = { facts: FACTS, file_mib: mib(bytes / 1024) };
    const stores: Record<string, () => Promise<Proc>> = {
      redis: async () => (await h.servers(1))[0]!,
      embedded: async () => {
        const p = await spawnServer({ DATA_DIR: join(dir, 'embedded'), AUTH_TOKENS: TOKENS });
        return p;
      },
    };
    for (const [kind, start] of Object.entries(stores)) {
      const server = await start();
      const env = (e: string) => ({ FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN, FACTSYNC_ENV: e });
      try {
        prog.update(`${kind}: import`, true);
        const imp = await serverStep(server, () => runCli(['import', file, '--restart', '--json'], env('cli')));
        const summary = JSON.parse(imp.out) as { writes: number };
        prog.update(`${kind}: baseline import`, true);
        const bare = await serverStep(server, async () => ({ ms: await bareImport(server.url, 'bare', file) }));

        prog.update(`${kind}: export`, true);
        const exp = await serverStep(server, () => runCli(['export', '-o', join(dir, `export-${kind}.jsonl`)], env('cli')));
        const exported = statSync(join(dir, `export-${kind}.jsonl`)).size;
        prog.update(`${kind}: baseline GET /snapshot`, true);
        const snap = await serverStep(server, async () => {
          const t0 = Date.now();
          const res = await fetch(`${server.url}/v1/envs/cli/snapshot`, { headers: { authorization: `Bearer ${ADMIN}` } });
          const len = (await res.arrayBuffer()).byteLength;
          return { ms: Date.now() - t0, bytes: len };
        });

        prog.update(`${kind}: reconcile 1%`, true);
        const rec = await serverStep(server, () => runCli(['reconcile', truth, '--type', 'user', '--json'], env('cli')));
        const plan = JSON.parse(rec.out) as { upserts: number; deletes: number; writes: number };
        prog.update(`${kind}: reconcile again (nothing to change)`, true);
        const again = await runCli(['reconcile', truth, '--type', 'user'], env('cli'));

        results[kind] = {
          import: { ms: imp.ms, facts_per_s: Math.round(FACTS / (imp.ms / 1000)), writes: summary.writes, cli_peak_rss_mib: imp.peakMiB, server_peak_growth_mib: imp.serverPeakGrowthMiB },
          import_baseline_bare_posts: { ms: bare.ms, facts_per_s: Math.round(FACTS / (bare.ms / 1000)), ratio: round(imp.ms / bare.ms, 2) },
          export: { ms: exp.ms, mib: mib(exported / 1024), cli_peak_rss_mib: exp.peakMiB, server_peak_growth_mib: exp.serverPeakGrowthMiB },
          export_baseline_get_snapshot: { ms: snap.ms, mib: mib(snap.bytes / 1024), server_peak_growth_mib: snap.serverPeakGrowthMiB, ratio: round(exp.ms / snap.ms, 2) },
          reconcile_1pct: { ms: rec.ms, ops_written: plan.upserts + plan.deletes, writes: plan.writes, cli_peak_rss_mib: rec.peakMiB, server_peak_growth_mib: rec.serverPeakGrowthMiB, ratio_to_import: round(rec.ms / imp.ms, 2) },
          reconcile_nothing_to_change: { ms: again.ms },
        };
        prog.done(`${kind}: ${JSON.stringify(results[kind])}`);
      } finally {
        await server.stop('SIGTERM');
      }
    }
    return results;
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
