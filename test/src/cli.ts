import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { spawnChild } from './children.js';
import { ROOT } from './procs.js';

/** What a finished CLI run printed. */
export interface CliRun {
  code: number | null;
  out: string;
  err: string;
}

/** A CLI process still running (tail, an import to kill). */
export interface CliChild {
  child: ChildProcess;
  readonly out: string;
  readonly err: string;
  done: Promise<CliRun>;
}

/**
 * `factsync ARGS` as a real child process, exactly as `npx factsync` runs it
 * (the workspace's bin script), with the environment given on top of a
 * clean one: no FACTSYNC_* of the machine's leak in.
 */
export function startCli(args: string[], env: Record<string, string>, input?: string): CliChild {
  const child = spawnChild(process.execPath, [join(ROOT, 'cli/bin/factsync.js'), ...args], {
    cwd: ROOT,
    // DATA_DIR points the dev-token fallback away from the project's .data/.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATA_DIR: '/nonexistent-factsync-test', ...env },
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  const run = { out: '', err: '' };
  child.stdout!.on('data', (d: Buffer) => (run.out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (run.err += d.toString('utf8')));
  if (input !== undefined) child.stdin!.end(input);
  const done = new Promise<CliRun>((resolve) => child.once('close', (code) => resolve({ code, out: run.out, err: run.err })));
  return {
    child,
    get out() {
      return run.out;
    },
    get err() {
      return run.err;
    },
    done,
  };
}

export const cli = (args: string[], env: Record<string, string>, input?: string): Promise<CliRun> => startCli(args, env, input).done;

/** Stdout as JSON lines. */
export const jsonLines = <T = unknown>(text: string): T[] => text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
