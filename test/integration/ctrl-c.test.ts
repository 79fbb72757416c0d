import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/ports.js';
import { ctrlCInPty } from '../src/pty.js';

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
    // A moment after it is up for the agent's first session (and for any line it would print about being offline).
    const { code, out } = await ctrlCInPty('npm start', { DATA_DIR: dir, PORT: String(ports[0]), AGENT_PORT: String(ports[1]), REDIS_URL: '', LOG_LEVEL: 'info' },
      'factsync is running', { upMs: 60_000, settleMs: 500, exitMs: 20_000 });
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
