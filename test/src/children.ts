import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/**
 * Every process a test starts goes through here: it runs in its own process
 * group (so `npm`, `tsx` and whatever they start die together), carries the
 * run's marker in its environment, and is killed when the test worker exits,
 * whatever failed. The global teardown then looks for any process that still
 * carries the marker (see `leftovers`).
 */
export const RUN_MARKER = 'FACTSYNC_TEST_RUN';
const children = new Set<ChildProcess>();

export function spawnChild(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const env = { ...(opts.env ?? process.env), [RUN_MARKER]: process.env[RUN_MARKER] ?? 'unset' };
  const child = spawn(command, args, { ...opts, env, detached: true });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILL a child's whole process group. */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

process.once('exit', () => {
  for (const c of children) killGroup(c);
});

/** Processes of this machine whose environment carries `marker` (Linux /proc). */
export function leftovers(marker: string): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return found;
  }
  for (const p of pids) {
    const pid = Number(p);
    if (pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${p}/environ`, 'utf8');
      if (!env.split('\0').includes(`${RUN_MARKER}=${marker}`)) continue;
      found.push({ pid, cmd: readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ').trim() });
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}
