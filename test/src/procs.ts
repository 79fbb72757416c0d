import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { killGroup, spawnChild } from './children.js';
import { scaled, waitUntil } from './wait.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));


export interface Proc {
  child: ChildProcess;
  url: string;
  lines: string[];
  /** Sends a signal and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs a TypeScript entry point as a real child process and waits until it logs
 * `readyMsg`; the log line's `url` field is where it listens.
 */
export async function spawnTs(entry: string, env: Record<string, string>, readyMsg: string, timeoutMs = 60_000, nodeArgs: string[] = [], wrap: string[] = []): Promise<Proc> {
  // `wrap` runs node under another command, e.g. `ip netns exec NS` for a test host (test/src/netns.ts).
  const argv = [...wrap, process.execPath, ...nodeArgs, '--import', 'tsx', join(ROOT, entry)];
  const child = spawnChild(argv[0]!, argv.slice(1), {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  timeoutMs = scaled(timeoutMs);
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let buf = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Never leave a half-started process behind: it would outlive the test run.
      killGroup(child);
      reject(new Error(`${entry} did not become ready in ${timeoutMs} ms:\n${lines.slice(-20).join('\n')}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (lines.length > 2000) lines.shift();
        if (line.includes(readyMsg)) {
          try {
            const o = JSON.parse(line) as { url?: string };
            if (o.url) {
              clearTimeout(timer);
              resolve(o.url);
            }
          } catch {
            // not a JSON log line
          }
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => lines.push(d.toString('utf8')));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited with ${code} before becoming ready:\n${lines.slice(-20).join('\n')}`));
    });
  });
  return {
    child, url, lines,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

export const spawnServer = (env: Record<string, string>, wrap: string[] = []) => spawnTs('server/src/main.ts', { PORT: '0', ENVS_AUTO_CREATE: 'true', ...env }, 'factsync server listening', 60_000, [], wrap);
export const spawnAgent = (env: Record<string, string>, wrap: string[] = []) => spawnTs('pdp-agent/src/main.ts', { PORT: '0', RECONNECT_MIN_MS: '20', RECONNECT_MAX_MS: '500', ...env }, 'factsync agent listening', 60_000, [], wrap);

/** Runs a script to completion and returns its stdout. */
export function runTs(entry: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(process.execPath, ['--import', 'tsx', join(ROOT, entry), ...args], {
      cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let errText = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (errText += d.toString('utf8')));
    // 'close', not 'exit': 'exit' may come before the last of stdout was read (seen on a loaded machine: empty output).
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${entry} exited ${code}: ${errText.slice(-2000)}`))));
  });
}

/** An npm script run as a user runs it (`npm start`, `npm run server`), its output collected; the caller kills it (killGroup). */
export interface NpmRun {
  child: ChildProcess;
  out: string;
  err: string;
  exited: Promise<number | null>;
}

export function npmScript(args: string[], env: Record<string, string | undefined>): NpmRun {
  const child = spawnChild('npm', args, { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const run: NpmRun = { child, out: '', err: '', exited: new Promise((r) => child.once('exit', (code) => r(code))) };
  child.stdout!.on('data', (d: Buffer) => (run.out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (run.err += d.toString('utf8')));
  return run;
}

/**
 * Until `npm start` prints "factsync is running". It starts a server and an
 * agent under tsx, which takes long on a loaded machine: the limit is wide, and
 * a start that exits or never says it runs fails with its own output.
 */
export async function untilRunning(run: NpmRun, what = 'npm start'): Promise<void> {
  const limit = scaled(120_000);
  const deadline = Date.now() + limit;
  while (!run.out.includes('factsync is running')) {
    const exited = run.child.exitCode !== null || run.child.signalCode !== null;
    if (exited || Date.now() > deadline) {
      throw new Error(`${what} ${exited ? `exited (${run.child.exitCode ?? run.child.signalCode})` : `did not print "factsync is running" within ${limit} ms`}; stdout: ${run.out.slice(-600)} stderr: ${run.err.slice(-1500)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Until the agent at `url` answers /readyz with 200 (it applied a snapshot). */
export const untilReady = async (url: string, what: string): Promise<void> => {
  await waitUntil(async () => (await fetch(`${url}/readyz`).then((r) => r.status, () => 0)) === 200, what, 60_000);
};

/**
 * A test file's scratch directory and the processes it starts: `track` each
 * one; `cleanup` (for afterAll) kills them all and removes the directory,
 * whatever failed.
 */
export function scratch(prefix: string): { dir: string; track: (p: Proc) => Proc; cleanup: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const procs: Proc[] = [];
  return {
    dir,
    track: (p) => {
      procs.push(p);
      return p;
    },
    cleanup: async () => {
      await Promise.all(procs.map((p) => p.stop('SIGKILL')));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
