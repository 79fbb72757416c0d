import { spawn } from 'node:child_process';
import { ROOT } from './procs.js';
import { scaled } from './wait.js';

/**
 * A command typed at a terminal of its own (`script`'s pseudo-terminal), as a
 * user runs it: none of the npm_* variables of the npm running the tests.
 * `exec` keeps `script`'s `$SHELL -c` (dash when SHELL is unset, as in CI)
 * out of the foreground group; a user's interactive shell is not in it either.
 */
export async function ctrlCInPty(command: string, env: Record<string, string>, ready: string, o: { upMs: number; settleMs?: number; exitMs: number }): Promise<{ code: number | null | 'hung'; out: string }> {
  const shell = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  const child = spawn('script', ['-qefc', `exec ${command}`, '/dev/null'], { cwd: ROOT, env: { ...shell, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + scaled(o.upMs);
  while (!out.includes(ready)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`${command} did not print "${ready}": ${out.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (o.settleMs) await new Promise((r) => setTimeout(r, o.settleMs));
  // Ctrl-C at the terminal: the line discipline signals the whole foreground group.
  child.stdin.write('\x03');
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), scaled(o.exitMs)))]);
  if (code === 'hung') child.kill('SIGKILL');
  return { code, out };
}
