import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { ROOT, npmScript, untilReady, untilRunning } from '../src/procs.js';
import { killGroup, spawnChild } from '../src/children.js';
import { freePort } from '../src/ports.js';
import { waitUntil } from '../src/wait.js';

const run = promisify(execFile);

/**
 * The README's tour runs as written: every `sh` block, in order, against a
 * real `npm start` on a fresh data directory (ports moved to free ones, the
 * token the one it printed); each command's output is compared with the JSON
 * the README shows under it. A block that starts a process (`npm run agent`)
 * is started and waited for; `npm ci`, `npm start` and `npm test` are what
 * this test itself stands on.
 */
interface Step { command: string; expected: string[] | undefined }

/** Output equals what the README shows, where a shown "…" stands for any value (ids, times). */
function matches(actual: unknown, shown: unknown): boolean {
  if (shown === '…') return true;
  if (Array.isArray(shown)) return Array.isArray(actual) && actual.length === shown.length && shown.every((s, i) => matches(actual[i], s));
  if (shown !== null && typeof shown === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
    const a = actual as Record<string, unknown>;
    const s = shown as Record<string, unknown>;
    return Object.keys(a).length === Object.keys(s).length && Object.keys(s).every((k) => k in a && matches(a[k], s[k]));
  }
  return actual === shown;
}

function tourBlocks(readme: string): string[] {
  return [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** A block's commands (joined across `\` continuations) with the `# {…}` line under each, if any. */
function steps(block: string): Step[] {
  const out: Step[] = [];
  let current = '';
  for (const line of block.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('# ')) {
      if (out.length > 0) (out[out.length - 1]!.expected ??= []).push(line.slice(2));
      continue;
    }
    current += line.endsWith('\\') ? `${line.slice(0, -1)} ` : line;
    if (!line.endsWith('\\')) {
      out.push({ command: current, expected: undefined });
      current = '';
    }
  }
  return out;
}

describe('the README tour, as written', () => {
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'factsync-readme-'));
  afterAll(() => {
    for (const c of children) killGroup(c);
    rmSync(dir, { recursive: true, force: true });
  });

  it('every sh block prints what the README shows', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const ports: Record<string, number> = { 7002: await freePort(), 7766: await freePort(), 7767: await freePort(), 7768: await freePort() };
    const local = (text: string) => text.replace(/\b(7002|7766|7767|7768)\b/g, (p) => String(ports[p]));
    const TOKEN = 'dev-readme-tour';
    const env: NodeJS.ProcessEnv = {
      ...process.env, TOKEN, DEV_TOKEN: TOKEN, DATA_DIR: dir, REDIS_URL: '', LOG_LEVEL: 'warn', PORT: String(ports[7002]), AGENT_PORT: String(ports[7766]),
      // The CLI's defaults are the standard ports; here they moved.
      FACTSYNC_URL: `http://127.0.0.1:${ports[7002]}`, FACTSYNC_AGENT_URL: `http://127.0.0.1:${ports[7766]}`,
    };
    // The dev token of this npm start, as a reader of the README has it; not one of the machine's.
    delete env.FACTSYNC_TOKEN;
    delete env.FACTSYNC_ENV;
    const start = npmScript(['start'], env);
    children.push(start.child);
    await untilRunning(start);
    expect(start.out).toContain(`dev token  ${TOKEN}`);

    const blocks = tourBlocks(readme);
    expect(blocks.length).toBeGreaterThan(4);
    let compared = 0;
    for (const block of blocks) {
      if (/^npm (ci|start|test)\b/m.test(block)) continue;
      for (const step of steps(block)) {
        const command = local(step.command);
        if (/npm run agent/.test(command)) {
          const { PORT: _p, AGENT_PORT: _a, DATA_DIR: _d, ...agentEnv } = env;
          const agent = spawnChild('bash', ['-c', command], { cwd: ROOT, env: agentEnv, stdio: 'ignore' });
          children.push(agent);
          const port = /PORT=(\d+)/.exec(command)![1];
          await untilReady(`http://127.0.0.1:${port}`, `the agent of "${step.command.slice(0, 40)}"`);
          continue;
        }
        const { stdout } = await run('bash', ['-c', command], { cwd: ROOT, env });
        if (step.expected === undefined) continue;
        const lines = stdout.split('\n').filter((l) => l.trim() !== '');
        expect(lines.length, `${step.command}\n${stdout}`).toBe(step.expected.length);
        step.expected.forEach((shown, i) => {
          const actual = JSON.parse(lines[i]!) as unknown;
          const want = JSON.parse(local(shown)) as unknown;
          if (!matches(actual, want)) expect(actual, step.command).toEqual(want);
        });
        compared++;
      }
    }
    expect(compared).toBeGreaterThanOrEqual(6);
  }, 180_000);
});
