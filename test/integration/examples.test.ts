import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, npmScript, untilReady, untilRunning } from '../src/procs.js';
import { killGroup, spawnChild } from '../src/children.js';
import { freePort } from '../src/ports.js';
import { waitUntil } from '../src/wait.js';

const run = promisify(execFile);
const EXAMPLES = ['permit-quickstart.ts', 'permit-quickstart.py', 'two-agents.ts'];

/**
 * The code the README shows is `examples/`, and it runs: each file's text is
 * in the README as it is, and each runs against a real `npm start` (agents
 * requiring AGENT_API_TOKEN=secret) and prints what its last line says. The
 * Python example needs an interpreter with the Permit SDK (`python3 -c
 * "import permit"`, PYTHONPATH honoured); where there is none, as in CI, it is
 * compared with the README but not run, and the test says so.
 */
describe('examples/', () => {
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'factsync-examples-'));
  afterAll(() => {
    for (const c of children) killGroup(c);
    rmSync(dir, { recursive: true, force: true });
  });

  it('the README shows each example as it is', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const f of EXAMPLES) expect(readme, f).toContain(readFileSync(join(ROOT, 'examples', f), 'utf8').trimEnd());
  });

  it('each example runs against a real npm start and prints what it says', async () => {
    // npm start picks its own ports (0) and prints them: a port chosen here could be taken by
    // another test's process before npm start, under tsx, gets to bind it.
    const second = await freePort();
    const token = 'dev-examples';
    const env = { ...process.env, DEV_TOKEN: token, DATA_DIR: dir, REDIS_URL: '', LOG_LEVEL: 'warn', AGENT_API_TOKEN: 'secret' };
    const start = npmScript(['start'], { ...env, PORT: '0', AGENT_PORT: '0' });
    children.push(start.child);
    await untilRunning(start);
    const printed = (what: string) => new RegExp(`^  ${what} +(http://\\S+)`, 'm').exec(start.out)?.[1];
    const [serverUrl, agentUrl] = [printed('server'), printed('agent')];
    if (!serverUrl || !agentUrl) throw new Error(`npm start printed no server or agent URL: ${start.out}`);
    const { DATA_DIR: _d, ...agentEnv } = env;
    const b = spawnChild('npm', ['run', 'agent'], {
      cwd: ROOT, env: { ...agentEnv, SERVER_URL: serverUrl, PORT: String(second), AGENT_ID: 'pdp-2', AGENT_TOKEN: token, AGENT_ENV: 'default' }, stdio: 'ignore',
    });
    children.push(b);
    await untilReady(`http://127.0.0.1:${second}`, 'the second agent');

    const urls = { AGENT_URL: agentUrl, SECOND_AGENT_URL: `http://127.0.0.1:${second}` };
    const ts = (file: string) => run(process.execPath, ['--import', 'tsx', join(ROOT, 'examples', file)], { cwd: ROOT, env: { ...env, ...urls } });
    expect((await ts('permit-quickstart.ts')).stdout.trim()).toBe('true');
    expect((await ts('two-agents.ts')).stdout.trim()).toBe('true');

    const python = spawnSync('python3', ['-c', 'import permit'], { env: process.env });
    if (python.status !== 0) {
      process.stdout.write('[examples] examples/permit-quickstart.py not run: no python3 with the Permit SDK here (compared with the README only)\n');
      return;
    }
    const py = await run('python3', [join(ROOT, 'examples', 'permit-quickstart.py')], { cwd: ROOT, env: { ...env, ...urls } });
    expect(py.stdout.trim()).toBe('True');
  }, 180_000);
});
