import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nanoid } from 'nanoid';
import { ADMIN, READER, TOKENS, newEnv } from '../src/inproc.js';
import { spawnServer, type Proc } from '../src/procs.js';
import { client, del, upsert } from '../src/http.js';
import { cli, jsonLines, startCli } from '../src/cli.js';
import { waitUntil } from '../src/wait.js';
import { killGroup } from '../src/children.js';

/**
 * The command-line client against real server processes (Redis and the
 * embedded store): import, export, resumed imports, bad lines, CSV,
 * reconcile and policy as code. The CLI runs as a child process, as
 * `npx factsync` runs it.
 */
type Fact = { type: string; key: string; value: Record<string, unknown> };
const dir = mkdtempSync(join(tmpdir(), 'factsync-cli-'));
const servers: Record<string, Proc> = {};
afterAll(async () => {
  await Promise.all(Object.values(servers).map((p) => p.stop('SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
});
beforeAll(async () => {
  const [redis, embedded] = await Promise.all([
    spawnServer({ REDIS_URL: inject('redisUrl'), KEY_PREFIX: `c${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`, AUTH_TOKENS: TOKENS }),
    spawnServer({ DATA_DIR: join(dir, 'server'), AUTH_TOKENS: TOKENS }),
  ]);
  servers.redis = redis;
  servers.embedded = embedded;
});

const file = (name: string, lines: readonly unknown[]): string => {
  const p = join(dir, `${nanoid(6)}-${name}`);
  writeFileSync(p, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return p;
};
const users = (n: number, from = 0): Fact[] =>
  Array.from({ length: n }, (_, i) => ({ type: 'user', key: `user-${from + i}@example.com`, value: { email: `user-${from + i}@example.com`, attributes: { n: from + i } } }));
const sortFacts = (fs: Fact[]): Fact[] => [...fs].sort((a, b) => (a.type + a.key < b.type + b.key ? -1 : 1));
const envOf = (kind: string, env: string, token = ADMIN) => ({ FACTSYNC_URL: servers[kind]!.url, FACTSYNC_TOKEN: token, FACTSYNC_ENV: env });
const head = async (kind: string, env: string): Promise<number> => (await client(servers[kind]!.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version;

describe.each(['embedded', 'redis'])('import and export (%s store)', (kind) => {
  it('imports 100k facts in writes of the chunk size, in order, and exports them back equal at one version', async () => {
    const env = newEnv();
    const facts = [...users(60_000), ...Array.from({ length: 40_000 }, (_, i) => ({
      type: 'role_assignment', key: `user-${i}@example.com/viewer/t${i % 7}`, value: { user: `user-${i}@example.com`, role: 'viewer', tenant: `t${i % 7}` },
    }))];
    const input = file('facts.jsonl', facts);
    const imp = await cli(['import', input], envOf(kind, env));
    expect(imp.err).toBe('');
    expect(imp.code).toBe(0);
    // Not a terminal: a JSON summary. 2,000 facts per write: 50 versions, nothing else.
    expect(JSON.parse(imp.out)).toMatchObject({ facts: 100_000, writes: 50, versions: [1, 50] });
    expect(await head(kind, env)).toBe(50);
    expect(JSON.parse(readFileSync(`${input}.factsync-import.json`, 'utf8'))).toMatchObject({ done: true, items: 100_000 });

    const exp = await cli(['export'], envOf(kind, env, READER));
    expect(exp.code).toBe(0);
    expect(exp.err).toContain('exported 100,000 facts');
    expect(exp.err).toContain('at version 50');
    expect(sortFacts(jsonLines<Fact>(exp.out))).toEqual(sortFacts(facts));

    // One type, one tenant.
    const t3 = await cli(['export', '--type', 'role_assignment', '--tenant', 't3'], envOf(kind, env, READER));
    expect(sortFacts(jsonLines<Fact>(t3.out))).toEqual(sortFacts(facts.filter((f) => f.value.tenant === 't3')));

    // Run again: done already, not a mistake (exit 0); says so and writes nothing.
    const again = await cli(['import', input], envOf(kind, env));
    expect(again.code).toBe(0);
    expect(again.err).toMatch(/was imported already \(100000 facts, versions 1\.\.50\); nothing written\. Delete .*factsync-import\.json or pass --restart/);
    expect(JSON.parse(again.out)).toMatchObject({ facts: 100000, versions: [1, 50], already_imported: true });
    expect(await head(kind, env)).toBe(50);
  });

  it('export is exact while writes go on: the log written during the scan is replayed over it', async () => {
    const env = newEnv();
    const api = client(servers[kind]!.url, ADMIN);
    const facts = users(30_000);
    expect((await cli(['import', file('u.jsonl', facts)], envOf(kind, env))).code).toBe(0);
    const exporting = startCli(['export'], envOf(kind, env, READER));
    // Writes while it reads: changes, deletes and new facts.
    let written = 0;
    const stopAt = Date.now() + 60_000;
    while (!(await Promise.race([exporting.done.then(() => true), new Promise((r) => setTimeout(() => r(false), 1))])) && Date.now() < stopAt) {
      const i = written++;
      await api.post(`/v1/envs/${env}/facts`, { ops: [upsert('user', `user-${i * 7}@example.com`, { email: 'changed' }), del('user', `user-${i * 7 + 1}@example.com`), upsert('user', `late-${i}`, {})] });
    }
    const r = await exporting.done;
    expect(r.code).toBe(0);
    const at = Number(/at version (\d+)/.exec(r.err)![1]);
    // The state at that version, read in one piece.
    const snap = await api.get(`/v1/envs/${env}/snapshot`);
    const exported = sortFacts(jsonLines<Fact>(r.out));
    if (snap.body.version === at) expect(exported).toEqual(sortFacts(snap.body.facts));
    // Whatever the timing: the replay was needed when writes happened during the scan, and the result matches the log.
    const replayed = new Map(facts.map((f) => [`${f.type}:${f.key}`, f]));
    const log = await api.get(`/v1/envs/${env}/changes?after=1&limit=10000`);
    for (const c of log.body.changes as { version: number; ops: { op: string; type: string; key: string; value?: Record<string, unknown> }[] }[]) {
      if (c.version > at) break;
      for (const op of c.ops) {
        if (op.op === 'upsert') replayed.set(`${op.type}:${op.key}`, { type: op.type, key: op.key, value: op.value! });
        else replayed.delete(`${op.type}:${op.key}`);
      }
    }
    expect(exported).toEqual(sortFacts([...replayed.values()]));
    expect(written).toBeGreaterThan(0);
  });
});

describe.each(['embedded', 'redis'])('the server\'s fact reads (%s store)', (kind) => {
  it('pages a type and a tenant whole, reads one fact, and answers bad input with a 4xx that says what to fix', async () => {
    const env = newEnv();
    const api = client(servers[kind]!.url, READER);
    await client(servers[kind]!.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [
      ...Array.from({ length: 250 }, (_, i) => upsert('resource_instance', `doc:${i}`, { tenant: i % 2 ? 'acme' : 'globex' })),
      ...Array.from({ length: 100 }, (_, i) => upsert('user', `u${i}`, { email: 'tenant "acme"' })),
    ] });
    const keys: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `type=resource_instance&tenant=acme&limit=40${cursor ? `&cursor=${cursor}` : ''}`;
      const r = await api.get(`/v1/envs/${env}/facts?${q}`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ version: 1, count: 350 });
      // A target, not a cap, on Redis (SCAN's COUNT is a hint); exact on the embedded store.
      if (kind === 'embedded') expect(r.body.facts.length).toBeLessThanOrEqual(40);
      keys.push(...r.body.facts.map((f: { key: string }) => f.key));
      cursor = r.body.next_cursor;
      pages++;
    } while (cursor !== null && pages < 100);
    expect(new Set(keys)).toEqual(new Set(Array.from({ length: 125 }, (_, i) => `doc:${2 * i + 1}`)));
    if (kind === 'embedded') expect(pages).toBeGreaterThan(1);
    expect((await api.get(`/v1/envs/${env}/facts/resource_instance/doc:3`)).body).toEqual({ type: 'resource_instance', key: 'doc:3', value: { tenant: 'acme' }, version: 1 });
    // A missing env is empty, and reading it creates nothing.
    expect((await api.get('/v1/envs/nothing-here/facts')).body).toEqual({ version: 0, epoch: null, id: '', count: 0, facts: [], next_cursor: null });

    const bad: [string, number, RegExp][] = [
      [`/v1/envs/${env}/facts?type=User`, 400, /type/],
      [`/v1/envs/${env}/facts?tenant=acme`, 400, /tenant filters a type: add type=/],
      [`/v1/envs/${env}/facts?limit=0`, 400, /limit/],
      [`/v1/envs/${env}/facts?cursor=abc`, 400, /cursor/],
      [`/v1/envs/${env}/facts?nope=1`, 400, /nope/],
      [`/v1/envs/${env}/facts/user/nobody`, 404, /no user "nobody" in env "e-\S+" at version 1/],
      ['/v1/envs/b@d/facts', 400, /env "b@d" is not valid/],
    ];
    if (kind === 'embedded') bad.push([`/v1/envs/${env}/facts?cursor=987654`, 400, /cursor 987654 is not an open scan .*start again without a cursor/]);
    for (const [path, status, message] of bad) {
      const r = await api.get(path);
      expect(r.status, path).toBe(status);
      expect(r.body.message, path).toMatch(message);
    }
    expect((await client(servers[kind]!.url).get(`/v1/envs/${env}/facts`)).status).toBe(401);
    expect((await client(servers[kind]!.url).get('/v1/limits')).status).toBe(401);
    expect((await api.get('/v1/limits')).body).toEqual({ max_ops_per_write: 20_000, body_limit_bytes: 8 * 1024 * 1024, log_retention: 100_000, store: kind });
  });
});

describe('resumable import (embedded store)', () => {
  it('an import killed mid-way and run again leaves exactly the file\'s facts, each write applied once', async () => {
    const env = newEnv();
    const facts = users(100_000);
    const input = file('big.jsonl', facts);
    const progress = `${input}.factsync-import.json`;
    // 250 facts a write: 400 writes, long enough to be killed in the middle.
    const first = startCli(['import', input, '--chunk-ops', '250'], envOf('embedded', env));
    // Keep the progress files it writes: restoring an older one below is an import whose last answers were lost.
    const seen = new Map<number, string>();
    await waitUntil(() => {
      if (!existsSync(progress)) return false;
      const text = readFileSync(progress, 'utf8');
      const seq = (JSON.parse(text) as { seq: number }).seq;
      seen.set(seq, text);
      return seq >= 20;
    }, 'the import to be under way', 60_000, 2);
    killGroup(first.child, 'SIGKILL');
    await first.done;
    const last = (JSON.parse(readFileSync(progress, 'utf8')) as { seq: number; done: boolean }).seq;
    expect(last).toBeLessThan(400);
    // Three or more writes the server applied but whose answers never reached the progress file.
    const older = Math.max(...[...seen.keys()].filter((s) => s <= last - 3));
    writeFileSync(progress, seen.get(older)!);
    const stopped = JSON.parse(seen.get(older)!) as { seq: number; done: boolean; line: number };
    expect(stopped.done).toBe(false);

    const second = await cli(['import', input, '--chunk-ops', '250'], envOf('embedded', env));
    expect(second.code).toBe(0);
    const summary = JSON.parse(second.out);
    expect(summary).toMatchObject({ facts: 100_000, writes: 400, resumed_at_line: stopped.line });
    // Each of the 400 writes became one version, those sent again after the restart included: none twice.
    expect(await head('embedded', env)).toBe(400);
    expect(summary.versions).toEqual([1, 400]);
    const exp = await cli(['export'], envOf('embedded', env, READER));
    expect(sortFacts(jsonLines<Fact>(exp.out))).toEqual(sortFacts(facts));
  });

  it('a bad line stops the import with its line number before anything after it is written; fixed, the same command continues', async () => {
    const env = newEnv();
    const lines: unknown[] = users(5_000);
    lines.splice(3_000, 0, '{"type":"user","key":"broken","value":{"email":42}}');
    const input = file('bad.jsonl', lines);
    const r = await cli(['import', input, '--chunk-ops', '1000'], envOf('embedded', env));
    expect(r.code).toBe(2);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toContain('line 3001: (user "broken"): value.email: expected string');
    expect(r.err).toContain('the 3,000 facts before it were, up to version 3');
    // Exactly the 3,000 facts before the line: nothing of the line or after it.
    const api = client(servers.embedded!.url, ADMIN);
    expect(await head('embedded', env)).toBe(3);
    expect((await api.get(`/v1/envs/${env}/facts/user/user-2999@example.com`)).status).toBe(200);
    expect((await api.get(`/v1/envs/${env}/facts/user/user-3000@example.com`)).status).toBe(404);

    lines[3_000] = { type: 'user', key: 'fixed', value: { email: 'fixed@example.com' } };
    writeFileSync(input, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
    const again = await cli(['import', input, '--chunk-ops', '1000'], envOf('embedded', env));
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out)).toMatchObject({ facts: 5_001, resumed_at_line: 3000 });
    const exp = await cli(['export'], envOf('embedded', env, READER));
    expect(jsonLines(exp.out)).toHaveLength(5_001);

    // A file changed before the point reached is refused, not half-applied.
    const input2 = file('changed.jsonl', users(10));
    const env2 = newEnv();
    writeFileSync(input2, users(10).map((f) => JSON.stringify(f)).join('\n') + '\n{oops\n');
    const r2 = await cli(['import', input2], envOf('embedded', env2));
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/line 11: not JSON \(.*line 1, column 2/);
    writeFileSync(input2, users(10, 100).map((f) => JSON.stringify(f)).join('\n') + '\n');
    const r3 = await cli(['import', input2], envOf('embedded', env2));
    expect(r3.code).toBe(2);
    expect(r3.err).toContain('changed before line 10, where the interrupted import stopped');
  });

  it('the progress of an import into another store (another epoch of the env) is not resumed: the file is imported from the start', async () => {
    const env = newEnv();
    const input = file('moved.jsonl', users(30));
    expect((await cli(['import', input, '--chunk-ops', '10'], envOf('embedded', env))).code).toBe(0);
    // Same env name, the other server: nothing of it is there.
    const r = await cli(['import', input, '--chunk-ops', '10'], envOf('redis', env));
    expect(r.err).toMatch(/^factsync: env "e-\S+" is not the store .*moved\.jsonl\.factsync-import\.json was written to \(epoch \S+, now none\): importing from the start\n$/);
    expect(JSON.parse(r.out)).toMatchObject({ facts: 30, writes: 3, versions: [1, 3] });
    expect(await head('redis', env)).toBe(3);
  });

  it('CSV: a type, a key column and a mapping of columns to value fields; role assignments without a key column', async () => {
    const env = newEnv();
    const csv = join(dir, 'people.csv');
    writeFileSync(csv, 'Id,Email,Dept,Ignored\nalice,alice@x.io,eng,zzz\nbob,"bob@x.io",sales,\ncarol,,"r&d, europe",q\n');
    const r = await cli(['import', csv, '--type', 'user', '--key', 'Id', '--map', 'Email=email,Dept=attributes.dept'], envOf('embedded', env));
    expect(r.err).toBe('');
    expect(JSON.parse(r.out)).toMatchObject({ facts: 3, writes: 1 });
    const get = async (t: string, k: string) => JSON.parse((await cli(['get', t, k], envOf('embedded', env, READER))).out);
    expect(await get('user', 'alice')).toEqual({ type: 'user', key: 'alice', value: { email: 'alice@x.io', attributes: { dept: 'eng' } }, version: 1 });
    // Empty cells are left out.
    expect(await get('user', 'carol')).toMatchObject({ value: { attributes: { dept: 'r&d, europe' } } });

    const ra = join(dir, 'roles.csv');
    writeFileSync(ra, 'user,role,tenant\nalice,admin,acme\nbob,viewer,acme\n');
    const r2 = await cli(['import', ra, '--type', 'role_assignment'], envOf('embedded', env));
    expect(r2.code).toBe(0);
    expect(await get('role_assignment', 'alice/admin/acme')).toMatchObject({ value: { user: 'alice', role: 'admin', tenant: 'acme' }, version: 2 });

    const noCol = await cli(['import', ra, '--type', 'user', '--key', 'Login', '--restart'], envOf('embedded', env));
    expect(noCol.code).toBe(2);
    expect(noCol.err).toContain('has no column "Login"');
    const noKey = await cli(['import', csv, '--type', 'user', '--restart'], envOf('embedded', env));
    expect(noKey.err).toContain('CSV import of user needs --key COLUMN');
  });
});

describe.each(['embedded', 'redis'])('reconcile (%s store)', (kind) => {
  it('makes one type of one tenant equal to a file: extra deleted, changed and missing upserted, the rest untouched; dry run and a second run write nothing', async () => {
    const env = newEnv();
    const api = client(servers[kind]!.url, ADMIN);
    const ra = (user: string, role: string, tenant: string): Fact => ({ type: 'role_assignment', key: `${user}/${role}/${tenant}`, value: { user, role, tenant } });
    const before = [
      ...Array.from({ length: 300 }, (_, i) => ra(`u${i}`, 'viewer', 'acme')),
      ...Array.from({ length: 50 }, (_, i) => ra(`u${i}`, 'viewer', 'globex')),
      ...users(20),
      { type: 'note', key: 'n1', value: { tenant: 'acme', text: 'not a role assignment' } },
    ];
    expect((await cli(['import', file('before.jsonl', before)], envOf(kind, env))).code).toBe(0);
    const v0 = await head(kind, env);
    // The source of truth: u0..u199 stay, u200..u299 go, u300..u309 arrive; a custom fact with a changed value.
    const want = [...Array.from({ length: 200 }, (_, i) => ra(`u${i}`, 'viewer', 'acme')), ...Array.from({ length: 10 }, (_, i) => ra(`u${300 + i}`, 'viewer', 'acme'))];
    const truth = file('truth.jsonl', want);

    const dry = await cli(['reconcile', truth, '--type', 'role_assignment', '--tenant', 'acme', '--dry-run'], envOf(kind, env));
    expect(dry.code).toBe(0);
    const plan = jsonLines<{ op: string; key: string; was: string }>(dry.out);
    expect(plan.filter((p) => p.op === 'upsert').map((p) => p.key).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `u${300 + i}/viewer/acme`).sort());
    expect(plan.filter((p) => p.op === 'delete')).toHaveLength(100);
    expect(dry.err).toContain('dry run: nothing written: 10 upserts, 100 deletes, 200 unchanged');
    expect(await head(kind, env)).toBe(v0);

    const run = await cli(['reconcile', truth, '--type', 'role_assignment', '--tenant', 'acme'], envOf(kind, env));
    expect(run.code).toBe(0);
    expect(JSON.parse(run.out)).toMatchObject({ upserts: 10, deletes: 100, unchanged: 200, writes: 1, versions: [v0 + 1, v0 + 1] });
    expect(await head(kind, env)).toBe(v0 + 1);

    const second = await cli(['reconcile', truth, '--type', 'role_assignment', '--tenant', 'acme'], envOf(kind, env));
    expect(second.code).toBe(0);
    expect(second.err).toContain('nothing to change: 0 upserts, 0 deletes, 210 unchanged');
    expect(await head(kind, env)).toBe(v0 + 1);

    // Everything outside the scope is as it was.
    const all = jsonLines<Fact>((await cli(['export'], envOf(kind, env, READER))).out);
    const expected = [...want, ...before.filter((f) => !(f.type === 'role_assignment' && f.value.tenant === 'acme'))];
    expect(sortFacts(all)).toEqual(sortFacts(expected));

    // A changed value is an upsert of the new one; a whole type without a tenant.
    await api.post(`/v1/envs/${env}/facts`, { ops: [upsert('user', 'user-3@example.com', { email: 'drifted' })] });
    const fixUsers = await cli(['reconcile', file('users.jsonl', users(20)), '--type', 'user'], envOf(kind, env));
    expect(JSON.parse(fixUsers.out)).toMatchObject({ upserts: 1, deletes: 0, unchanged: 19 });
    expect((await api.get(`/v1/envs/${env}/facts/user/user-3@example.com`)).body.value).toEqual(users(20)[3]!.value);
  });
});

describe('reconcile and policy: limits and validation (embedded store)', () => {
  it('a plan larger than one write is split into the fewest writes and says so', async () => {
    const env = newEnv();
    const big = file('big-truth.jsonl', users(45_000));
    const r = await cli(['reconcile', big, '--type', 'user'], envOf('embedded', env));
    expect(r.code).toBe(0);
    // MAX_OPS_PER_WRITE is 20,000: three writes, consecutive versions.
    expect(r.err).toContain('has 45,000 ops, more than one write may carry (20,000 ops');
    expect(JSON.parse(r.out)).toMatchObject({ upserts: 45_000, writes: 3, versions: [1, 3] });
  });

  it('reconcile refuses a file that holds facts outside its scope, or a key twice, and writes nothing', async () => {
    const env = newEnv();
    const mixed = file('mixed.jsonl', [...users(3), { type: 'tenant', key: 'acme', value: {} }]);
    const r = await cli(['reconcile', mixed, '--type', 'user'], envOf('embedded', env));
    expect(r.code).toBe(2);
    expect(r.err).toContain('line 4: tenant "acme" is not one of the user facts being reconciled; nothing was written');
    const twice = await cli(['reconcile', file('twice.jsonl', [...users(3), users(3)[1]]), '--type', 'user'], envOf('embedded', env));
    expect(twice.err).toContain('line 4: user "user-1@example.com" is also on line 2');
    expect(await head('embedded', env)).toBe(0);
  });

  it('policy apply: one version that makes the policy equal to the file, the diff printed; the same file again writes nothing; export round-trips', async () => {
    const env = newEnv();
    const api = client(servers.embedded!.url, ADMIN);
    // Data is not policy: it stays.
    await api.post(`/v1/envs/${env}/facts`, { ops: [upsert('user', 'alice', {}), upsert('role', 'legacy', { permissions: ['document:read'] })] });
    const yaml = join(dir, 'policy.yaml');
    writeFileSync(yaml, [
      'resource:',
      '  document:',
      '    actions: [read, write, delete]',
      '    attributes: { private: boolean }',
      'role:',
      '  viewer: { permissions: ["document:read"] }',
      '  editor: { permissions: ["document:write"], extends: [viewer] }',
      'resource_role:',
      '  "document#owner": { permissions: [read, write, delete] }',
      'condition_set:',
      '  eng: { kind: userset, conditions: { allOf: [ { "user.dept": { equals: eng } } ] } }',
      '  private_docs: { kind: resourceset, resource: document, conditions: { allOf: [ { "resource.private": { equals: true } } ] } }',
      'condition_set_rule:',
      '  "eng/document:read/private_docs": { user_set: eng, permission: "document:read", resource_set: private_docs }',
      '',
    ].join('\n'));
    const r = await cli(['policy', 'apply', yaml], envOf('embedded', env));
    expect(r.err).toBe('');
    const out = JSON.parse(r.out);
    expect(out.written).toBe(true);
    expect(out.versions).toEqual([2, 2]);
    expect(out.changes).toEqual(expect.arrayContaining(['+ resource document', '+ role editor', '+ condition_set_rule eng/document:read/private_docs', '- role legacy']));
    expect((await api.get(`/v1/envs/${env}/facts/user/alice`)).status).toBe(200);
    expect((await api.get(`/v1/envs/${env}/facts/role/legacy`)).status).toBe(404);

    const again = await cli(['policy', 'apply', yaml], envOf('embedded', env));
    expect(JSON.parse(again.out)).toEqual({ changes: [], written: false, read_at: 2 });

    const exported = join(dir, 'exported.yaml');
    expect((await cli(['policy', 'export', '-o', exported], envOf('embedded', env, READER))).code).toBe(0);
    const round = await cli(['policy', 'apply', exported], envOf('embedded', env));
    expect(JSON.parse(round.out)).toMatchObject({ changes: [], written: false });
    const asJson = await cli(['policy', 'export', '--format', 'json'], envOf('embedded', env, READER));
    expect(JSON.parse(asJson.out).role.editor).toEqual({ permissions: ['document:write'], extends: ['viewer'] });

    // A change in the file is one version with its diff.
    writeFileSync(yaml, readFileSync(yaml, 'utf8').replace('[read, write, delete]', '[read, write]').replace(/  editor:.*\n/, ''));
    const edit = await cli(['policy', 'apply', yaml, '--dry-run'], envOf('embedded', env));
    expect(JSON.parse(edit.out)).toEqual({ changes: ['~ resource document', '- role editor'], written: false, read_at: 2 });
    expect(await head('embedded', env)).toBe(2);
  });

  it('policy apply refuses what the API would, with the API\'s message naming the type and key', async () => {
    const env = newEnv();
    const cases: [string, string][] = [
      ['role:\n  bad: { permissions: "document:read" }\n', 'role "bad": value.permissions: expected array'],
      ['role:\n  bad: { permissions: [read] }\n', 'role "bad": permission "read" is not type:action, e.g. document:read'],
      ['roles:\n  x: {}\n', '"roles" is not a policy type; use resource, role, resource_role, condition_set, condition_set_rule'],
      ['user:\n  alice: {}\n', '"user" is not a policy type'],
      ['condition_set_rule:\n  wrong: { user_set: a, permission: "document:read", resource_set: b }\n', 'condition_set_rule "wrong": a condition_set_rule with this value must have key "a/document:read/b"'],
      ['role: [1\n', 'is not YAML or JSON'],
    ];
    for (const [text, message] of cases) {
      const p = join(dir, `${nanoid(5)}.yaml`);
      writeFileSync(p, text);
      const r = await cli(['policy', 'apply', p], envOf('embedded', env));
      expect(r.code, text).toBe(2);
      expect(r.err, text).toContain(message);
      expect(r.err.trim().split('\n'), text).toHaveLength(1);
    }
    expect(await head('embedded', env)).toBe(0);
  });
});
