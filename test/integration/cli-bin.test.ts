import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../src/procs.js';
import { cli } from '../src/cli.js';
import { ctrlCInPty } from '../src/pty.js';
import { ADMIN, startAgent, startServer, type RunningServer } from '../src/inproc.js';

/** The bin runs the CLI built to plain JS, never a stale build; and its refusals name the CLI's own settings. */
describe('npx factsync: the built bin', () => {
  const built = join(ROOT, 'cli/dist/factsync.mjs');
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a build older than its sources is rebuilt before it runs', async () => {
    // Older than any source: as after a `git pull` or an edit.
    if (existsSync(built)) utimesSync(built, new Date(0), new Date(0));
    const before = Date.now();
    const r = await cli(['--help'], {});
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('Command-line client of a factsync server');
    expect(statSync(built).mtimeMs).toBeGreaterThan(before - 2000);
    // Fresh now: the next run does not build again.
    const mtime = statSync(built).mtimeMs;
    expect((await cli(['--help'], {})).code).toBe(0);
    expect(statSync(built).mtimeMs).toBe(mtime);
  }, 60_000);

  it('Ctrl-C on tail in a terminal exits 0, run directly and through npx (whose forwarded signal is the same keypress)', async () => {
    // bash as npx's script shell: dash, the default /bin/sh here, dies of the Ctrl-C itself (docs/cli.md says so).
    for (const command of ['node_modules/.bin/factsync tail', 'npx --script-shell=/bin/bash factsync tail']) {
      const { code, out } = await ctrlCInPty(command, { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN, DATA_DIR: '/nonexistent-factsync-test' },
        'factsync tail: following env', { upMs: 30_000, exitMs: 15_000 });
      expect(code, `${command}: ${out}`).toBe(0);
    }
  }, 90_000);

  it('check against an agent with AGENT_API_TOKEN names FACTSYNC_AGENT_TOKEN', async () => {
    const agent = await startAgent(server.url, { env: { AGENT_API_TOKEN: 'local-secret' } });
    try {
      const env = { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN, FACTSYNC_AGENT_URL: agent.url };
      const without = await cli(['check', 'u', 'read', 'doc'], env);
      expect(without.code).toBe(1);
      expect(without.err).toContain('set FACTSYNC_AGENT_TOKEN');
      const wrong = await cli(['check', 'u', 'read', 'doc'], { ...env, FACTSYNC_AGENT_TOKEN: 'nope' });
      expect(wrong.err).toContain('the agent refused FACTSYNC_AGENT_TOKEN');
      const right = await cli(['check', 'u', 'read', 'doc'], { ...env, FACTSYNC_AGENT_TOKEN: 'local-secret' });
      expect(right.code, right.err).toBe(0);
      expect(JSON.parse(right.out)).toMatchObject({ allow: false });
    } finally {
      await agent.close();
    }
  }, 60_000);
});
