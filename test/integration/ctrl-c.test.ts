import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../src/procs.js';
import { freePort } from '../src/ports.js';
import { scaled } from '../src/wait.js';

/**
 * Ctrl-C on `npm start` in a real terminal: the pty's line discipline sends
 * SIGINT to the whole foreground group (npm, node), and npm forwards its own
 * to node as well. That is one keypress, not two: a clean exit 0 with the
 * server and the agent gone.
 */
describe('npm start in a terminal', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /** `npm start` on a pseudo-terminal of `script`'s own (what we write to it is typed at that terminal), Ctrl-C once it is up. */
  async function startThenCtrlC(dir: string): Promise<{ code: number | null | 'hung'; out: string; ports: number[] }> {
    const ports = [await freePort(), await freePort()];
    // As from a user's shell: none of the npm_* variables of the npm that runs this test.
    const shell = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
    // `exec`: script runs its command through $SHELL -c (dash when SHELL is unset, as in CI), and a
    // non-interactive dash left between the pty and npm dies of the same Ctrl-C itself (130). A
    // user's interactive shell is not in the foreground group at all: npm is, alone.
    const child = spawn('script', ['-qefc', 'exec npm start', '/dev/null'], {
      cwd: ROOT, env: { ...shell, DATA_DIR: dir, PORT: String(ports[0]), AGENT_PORT: String(ports[1]), REDIS_URL: '', LOG_LEVEL: 'info' }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + scaled(60_000);
    while (!out.includes('factsync is running')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`npm start did not come up: ${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // A moment for the agent's first session (and for any line it would print about being offline).
    await new Promise((r) => setTimeout(r, 500));
    child.stdin.write('\x03');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), scaled(20_000)))]);
    if (code === 'hung') child.kill('SIGKILL');
    return { code, out, ports };
  }

  it('Ctrl-C shuts down cleanly and exits 0, leaving no process listening; a restart says nothing of being offline', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'factsync-ctrl-c-'));
    dirs.push(dir);
    for (const run of ['first', 'restart']) {
      const { code, out, ports } = await startThenCtrlC(dir);
      expect(code, `${run}: ${out.slice(-2000)}`).toBe(0);
      expect(out).toMatch(/shut down cleanly/);
      // What the README tells the reader to run, and the status page with its token in the fragment.
      expect(out).toMatch(/export TOKEN=dev-[0-9a-f]{24}/);
      expect(out).toMatch(/status {5}http:\/\/127\.0\.0\.1:\d+\/#token=dev-[0-9a-f]{24}&env=default/);
      expect(out).not.toMatch(/second signal/);
      // The agent restored its state and reached the server at once: it was never offline.
      expect(out, run).not.toMatch(/offline: no server answers/);
      // Both ports are free again: nothing of the deployment is left running.
      for (const p of ports) {
        const r = await fetch(`http://127.0.0.1:${p}/healthz`).then(() => 'answered', () => 'refused');
        expect(r, `port ${p}`).toBe('refused');
      }
    }
  }, 180_000);
});
