import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServer } from '../test/src/procs.js';
import { ADMIN, TOKENS } from './lib/harness.js';
import { Progress } from './lib/stats.js';

/**
 * CLI-START: how long `npx factsync` takes before it does anything, per command,
 * median of N runs: the built bin (cli/dist, what users run) beside the
 * TypeScript entry compiled at start by tsx (what the bin ran before), and
 * beside the floors of the same run: `node -e 0` (node itself) and npx
 * running a bin that does nothing (npx resolving a local bin and starting it).
 */
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const RUNS = process.env.BENCH_QUICK === '1' ? 5 : 15;
const round = (x: number, d = 0) => Math.round(x * 10 ** d) / 10 ** d;

/** A package whose one bin prints nothing: what `npx <bin>` costs before any CLI of ours runs. */
function npxFloor(): string {
  const dir = mkdtempSync(join(tmpdir(), 'factsync-npx-floor-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'npx-floor', version: '1.0.0', bin: { 'npx-floor': './bin.mjs' } }));
  writeFileSync(join(dir, 'bin.mjs'), '#!/usr/bin/env node\n');
  chmodSync(join(dir, 'bin.mjs'), 0o755);
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  symlinkSync('../../bin.mjs', join(dir, 'node_modules', '.bin', 'npx-floor'));
  return dir;
}

function medianMs(argv: string[], env: NodeJS.ProcessEnv, cwd = ROOT): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = spawnSync(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr.toString().slice(0, 300)}`);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return round(times[times.length >> 1]!);
}

export async function cliStart(): Promise<Record<string, unknown>> {
  const server = await spawnServer({ AUTH_TOKENS: TOKENS, ENVS: 'default' });
  const floor = npxFloor();
  try {
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN, DATA_DIR: '/nonexistent' };
    const arms: Record<string, string[]> = {
      'node -e 0': [process.execPath, '-e', '0'],
      'npx floor': ['npx', 'npx-floor'],
      'bin --help': [process.execPath, 'cli/bin/factsync.js', '--help'],
      'bin status': [process.execPath, 'cli/bin/factsync.js', 'status'],
      'tsx --help': [process.execPath, '--import', 'tsx', 'cli/src/main.ts', '--help'],
      'tsx status': [process.execPath, '--import', 'tsx', 'cli/src/main.ts', 'status'],
      'npx factsync --help': ['npx', 'factsync', '--help'],
      'npx factsync status': ['npx', 'factsync', 'status'],
    };
    const progress = new Progress('cli start');
    const ms: Record<string, number> = {};
    for (const [name, argv] of Object.entries(arms)) {
      progress.update(`${name}: ${RUNS} runs`, true);
      ms[name] = medianMs(argv, env, name === 'npx floor' ? floor : ROOT);
    }
    progress.done(Object.entries(ms).map(([k, v]) => `${k} ${v} ms`).join(', '));
    return {
      runs: RUNS,
      medianMs: ms,
      // What the CLI itself costs beyond node, and what npx adds on top of anything it runs.
      cliOverNodeMs: { help: round(ms['bin --help']! - ms['node -e 0']!), status: round(ms['bin status']! - ms['node -e 0']!) },
      builtVsTsx: { help: round(ms['bin --help']! / ms['tsx --help']!, 2), status: round(ms['bin status']! / ms['tsx status']!, 2) },
      npxOverheadMs: round(ms['npx floor']! - ms['node -e 0']!),
    };
  } finally {
    rmSync(floor, { recursive: true, force: true });
    await server.stop();
  }
}
