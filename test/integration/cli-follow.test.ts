import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createServerClient, FactsyncClientError } from '@factsync/sdk';
import { followsChain, type Change } from '@factsync/shared';
import { ADMIN, AGENT, READER, TOKENS, newEnv } from '../src/inproc.js';
import { ROOT, spawnAgent, spawnServer, untilReady, scratch, type Proc } from '../src/procs.js';
import { client, upsert } from '../src/http.js';
import { cli, jsonLines, startCli } from '../src/cli.js';
import { freePort } from '../src/ports.js';
import { spawnChild } from '../src/children.js';
import { waitUntil, within } from '../src/wait.js';

/**
 * Following an env's changes (`tail` and the SDK's `changes()` iterator) as
 * subscribers over real sockets, across a server restart; `check` through a
 * real agent; and the CLI's errors.
 */
const { dir, track, cleanup } = scratch('factsync-follow-');
afterAll(cleanup);
const write = (url: string, env: string, key: string) => client(url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('user', key, { email: `${key}@x.io` })] });

type Line = { version: number; id: string; ts: string; ops: { type: string; key: string }[] };
const inChain = (lines: Line[]): boolean => lines.every((c, i) => i === 0 || followsChain(lines[i - 1]!.id, c as unknown as Change));

describe('tail', () => {
  it('prints every change once, in order, live, and resumes across a server restart without gap or repeat', async () => {
    const port = await freePort();
    const dataDir = join(dir, 'restart');
    const env = newEnv();
    let server = track(await spawnServer({ PORT: String(port), DATA_DIR: dataDir, AUTH_TOKENS: TOKENS }));
    for (let i = 1; i <= 3; i++) await write(server.url, env, `before-${i}`);
    const tail = startCli(['tail', '--after', '0'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER, FACTSYNC_ENV: env });
    await waitUntil(() => tail.err.includes('following env'), 'tail to go live', 60_000);
    for (let i = 1; i <= 3; i++) await write(server.url, env, `live-${i}`);
    await waitUntil(() => jsonLines(tail.out).length === 6, 'six changes printed', 30_000);

    await server.stop('SIGTERM');
    await waitUntil(() => tail.err.includes('disconnected'), `tail to notice the server left (its stderr: ${tail.err})`, 30_000);
    server = track(await spawnServer({ PORT: String(port), DATA_DIR: dataDir, AUTH_TOKENS: TOKENS }));
    for (let i = 1; i <= 4; i++) await write(server.url, env, `after-${i}`);
    await waitUntil(() => jsonLines(tail.out).length >= 10 || tail.child.exitCode !== null, 'ten changes printed', 60_000);
    expect(tail.child.exitCode, tail.err).toBe(null);

    tail.child.kill('SIGINT');
    const done = await within(tail.done, 'tail to exit on SIGINT', 30_000, () => tail.err);
    expect(done.code).toBe(0);
    const lines = jsonLines<Line>(done.out);
    expect(lines.map((l) => l.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(lines.map((l) => l.ops[0]!.key)).toEqual(['before-1', 'before-2', 'before-3', 'live-1', 'live-2', 'live-3', 'after-1', 'after-2', 'after-3', 'after-4']);
    expect(inChain(lines)).toBe(true);
    expect(Object.keys(lines[0]!).sort()).toEqual(['id', 'ops', 'ts', 'version']);

    // From a version to the head, then it ends; and only some types.
    const part = await cli(['tail', '--after', '7', '--until-head'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER, FACTSYNC_ENV: env });
    expect(part.code).toBe(0);
    expect(jsonLines<Line>(part.out).map((l) => l.version)).toEqual([8, 9, 10]);
    await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('tenant', 'acme', {})] });
    const tenants = await cli(['tail', '--after', '0', '--until-head', '--types', 'tenant'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER, FACTSYNC_ENV: env });
    expect(jsonLines<Line>(tenants.out).map((l) => [l.version, l.ops[0]!.key])).toEqual([[11, 'acme']]);
  });

  it('refuses to skip: a log trimmed past the version asked for is an error that says what to do', async () => {
    const server = track(await spawnServer({ AUTH_TOKENS: TOKENS, LOG_RETENTION: '5' }));
    const env = newEnv();
    for (let i = 1; i <= 12; i++) await write(server.url, env, `u${i}`);
    const r = await cli(['tail', '--after', '1', '--until-head'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER, FACTSYNC_ENV: env });
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^factsync: the change log no longer holds version 2 \(head is 12\): run factsync export for the state, then factsync tail --after the version it names \(log_truncated, HTTP 410\)\n$/);
  });
});

describe('the SDK\'s changes() iterator', () => {
  it('yields every version once, in order and chained, while two writers write, and stops when aborted', async () => {
    const server = track(await spawnServer({ AUTH_TOKENS: TOKENS }));
    const env = newEnv();
    for (let i = 0; i < 5; i++) await write(server.url, env, `pre-${i}`);
    const stop = new AbortController();
    const seen: Change[] = [];
    let live = false;
    const sdk = createServerClient({ url: server.url, token: READER, env });
    const following = (async () => {
      for await (const c of sdk.changes({ after: 2, signal: stop.signal, onState: (s) => (live ||= s === 'live') })) {
        seen.push(c);
        if (c.version === 205) stop.abort();
      }
    })();
    await waitUntil(() => live, 'the iterator to go live', 30_000);
    await Promise.all([0, 1].map(async (w) => {
      for (let i = 0; i < 100; i++) await write(server.url, env, `w${w}-${i}`);
    }));
    await following;
    expect(seen.map((c) => c.version)).toEqual(Array.from({ length: 203 }, (_, i) => i + 3));
    expect(inChain(seen as unknown as Line[])).toBe(true);

    // A reader token may follow; a token of no role here may not, and says so.
    const denied = createServerClient({ url: server.url, token: 'nobody', env });
    await expect(async () => {
      for await (const c of denied.changes({ after: 0 })) void c;
    }).rejects.toMatchObject({ code: 'unauthorized', status: 401 } satisfies Partial<FactsyncClientError>);
  });

  it('ends when aborted during its last catch-up page, instead of going live on an aborted signal', async () => {
    const server = track(await spawnServer({ AUTH_TOKENS: TOKENS }));
    const env = newEnv();
    for (let i = 0; i < 3; i++) await write(server.url, env, `pre-${i}`);
    const stop = new AbortController();
    const sdk = createServerClient({ url: server.url, token: READER, env });
    // The abort lands while the page that ends the catch-up (an empty one) is in flight.
    const page = sdk.changesPage.bind(sdk);
    sdk.changesPage = async (after, limit) => {
      const p = await page(after, limit);
      if (p.changes.length === 0) stop.abort();
      return p;
    };
    const seen: number[] = [];
    const states: string[] = [];
    await within((async () => {
      for await (const c of sdk.changes({ after: 0, signal: stop.signal, onState: (s) => states.push(s) })) seen.push(c.version);
    })(), 'the iterator to end after its abort', 15_000);
    expect(seen).toEqual([1, 2, 3]);
    expect(states).toEqual([]);
  });
});

describe('check and errors', () => {
  it('check asks the agent and prints {allow, version}; --at-least waits for a version', async () => {
    const server = track(await spawnServer({ AUTH_TOKENS: TOKENS }));
    const env = newEnv();
    const agent = track(await spawnAgent({ SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'cli-check' }));
    await untilReady(agent.url, 'the agent');
    const e = { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN, FACTSYNC_ENV: env, FACTSYNC_AGENT_URL: agent.url };
    const w = await cli(['write', '-'], e, JSON.stringify({ ops: [
      upsert('resource', 'document', { actions: ['read'] }), upsert('role', 'viewer', { permissions: ['document:read'] }),
      upsert('role_assignment', 'alice/viewer/acme', { user: 'alice', role: 'viewer', tenant: 'acme' }),
    ] }));
    const version = JSON.parse(w.out).version as number;
    const yes = await cli(['check', 'alice', 'read', 'document:1', '--tenant', 'acme', '--at-least', String(version)], e);
    expect(yes.err).toBe('');
    expect(JSON.parse(yes.out)).toEqual({ allow: true, version });
    const no = await cli(['check', 'alice', 'read', 'document', '--tenant', 'globex', '--at-least', String(version)], e);
    expect(JSON.parse(no.out)).toEqual({ allow: false, version });

    // status and agents see the agent.
    const status = JSON.parse((await cli(['status', '--json'], e)).out);
    expect(status).toMatchObject({ store: 'memory', env, head: version, agents: { connected: 1 } });
    const agents = JSON.parse((await cli(['agents'], e)).out);
    expect(agents).toEqual([expect.objectContaining({ id: 'cli-check', connected: true })]);
  });

  it('errors are one line on stderr: 1 when the server refuses or is away, 2 for a mistake in the command', async () => {
    const server = track(await spawnServer({ AUTH_TOKENS: TOKENS }));
    const away = `http://127.0.0.1:${await freePort()}`;
    const cases: [string[], Record<string, string>, number, RegExp][] = [
      [['status'], { FACTSYNC_URL: away }, 1, /^factsync: cannot reach the server at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\n$/],
      [['status'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: 'wrong' }, 1, /^factsync: .*\(unauthorized, HTTP 401\)\n$/],
      [['status'], { FACTSYNC_URL: 'not a url' }, 2, /^factsync: FACTSYNC_URL="not a url" is not a URL: use e\.g\. http:\/\/127\.0\.0\.1:7002\n$/],
      [['write', '-'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER }, 1, /\(forbidden, HTTP 403\)\n$/],
      [['get', 'user', 'nobody'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER }, 1, /^factsync: no user "nobody" in env "default" at version \d+ \(not_found, HTTP 404\)\n$/],
      [['import', '/nonexistent/file.jsonl'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN }, 2, /^factsync: cannot read \/nonexistent\/file\.jsonl: no such file\n$/],
      [['tail', '--after', 'x'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER }, 2, /^factsync: --after x is not a version/],
      [['token', 'create', '--role', 'agent', '--envs', 'prod'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN }, 1, /does not mint tokens: start it with JWT_SECRET set .*\(not_found, HTTP 404\)/],
      [['nosuch'], {}, 2, /unknown command 'nosuch'/],
    ];
    for (const [args, env, code, err] of cases) {
      const input = args[0] === 'write' ? '{"ops":[{"op":"upsert","type":"user","key":"a","value":{}}]}' : undefined;
      const r = await cli(args, env, input);
      expect(r.err, args.join(' ')).toMatch(err);
      expect(r.code, args.join(' ')).toBe(code);
    }
  });

  it('npx factsync runs the workspace\'s command after npm ci', async () => {
    const server = track(await spawnServer({ AUTH_TOKENS: TOKENS }));
    const child = spawnChild('npx', ['--no-install', 'factsync', 'envs', '--json'], {
      cwd: ROOT, env: { ...process.env, FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise((r) => child.once('close', r));
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual([]);
  });
});
