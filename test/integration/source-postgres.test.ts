import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { cli, startCli, type CliChild } from '../src/cli.js';
import { postgresBin, startPostgres, type PgCluster } from '../src/postgres.js';
import { SOAK_SCALE, waitUntil, within } from '../src/wait.js';

/**
 * The Postgres source against a real cluster of the test's own (wal_level=logical)
 * and a real server, the source a real CLI process: first snapshot, streaming,
 * row semantics, transactions as versions, kill -9 at random moments, slot
 * faults and resync, validation at start.
 */
const bin = postgresBin();
if (!bin) console.warn('source-postgres.test.ts skipped: no PostgreSQL binaries (pg_config --bindir or /usr/lib/postgresql/*/bin); apt-get install postgresql');
describe.skipIf(!bin)('source: Postgres', () => {
  let pgc: PgCluster;
  let server: RunningServer;
  const dir = mkdtempSync(join(tmpdir(), 'factsync-source-'));
  const running: CliChild[] = [];

  beforeAll(async () => {
    pgc = await startPostgres();
    server = await startServer();
  }, 120_000);
  afterAll(async () => {
    for (const r of running) r.child.kill('SIGKILL');
    await server?.close();
    await pgc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = async (url: string): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    return c;
  };

  /** A database of its own per test, with the tables the mapping reads. */
  async function database(name: string): Promise<string> {
    await pgc.sql(`CREATE DATABASE ${name}`);
    const url = pgc.url.replace(/\/postgres$/, `/${name}`);
    const c = await connect(url);
    await c.query(`
      CREATE TABLE users (email text PRIMARY KEY, first_name text, dept text, age int, bio text);
      CREATE TABLE memberships (id serial PRIMARY KEY, user_email text NOT NULL, role text NOT NULL, tenant text NOT NULL, UNIQUE (user_email, role, tenant));
      ALTER TABLE memberships REPLICA IDENTITY FULL;
      CREATE TABLE doc_editors (doc_id text, user_email text, tenant text NOT NULL, PRIMARY KEY (doc_id, user_email));`);
    await c.end();
    return url;
  }

  function config(name: string, url: string, extra = ''): string {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `sources:
  - name: ${name}
    postgres:
      url: ${url}
      publication: pub_${name}
      slot: slot_${name}
      create_publication: true
      heartbeat: 500ms
    tables:
      - table: public.memberships
        type: role_assignment
        key: "{user_email}/{role}/{tenant}"
        value: { user: "{user_email}", role: "{role}", tenant: "{tenant}" }
      - table: public.users
        type: user
        key: "{email}"
        value: { email: "{email}", first_name: "{first_name}", attributes: { department: "{dept}", age: "{age}", bio: "{bio}" } }
      - table: doc_editors
        type: relationship
        key: "document:{doc_id}#editor@user:{user_email}"
        value: { object: "document:{doc_id}", relation: editor, subject: "user:{user_email}", tenant: "{tenant}" }
${extra}`);
    return file;
  }

  const run = (file: string, env: string): CliChild => {
    const c = startCli(['source', 'run', file, '--env', env], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN, LOG_LEVEL: 'info' });
    running.push(c);
    return c;
  };

  /** What the mapping makes of the tables now. */
  async function expected(url: string): Promise<Record<string, unknown>[]> {
    const c = await connect(url);
    try {
      const users = (await c.query('SELECT * FROM users')).rows.map((r) => ({ type: 'user', key: r.email, value: { email: r.email, first_name: r.first_name, attributes: { department: r.dept, age: r.age, bio: r.bio } } }));
      const ms = (await c.query('SELECT * FROM memberships')).rows.map((r) => ({ type: 'role_assignment', key: `${r.user_email}/${r.role}/${r.tenant}`, value: { user: r.user_email, role: r.role, tenant: r.tenant } }));
      const docs = (await c.query('SELECT * FROM doc_editors')).rows.map((r) => ({ type: 'relationship', key: `document:${r.doc_id}#editor@user:${r.user_email}`, value: { object: `document:${r.doc_id}`, relation: 'editor', subject: `user:${r.user_email}`, tenant: r.tenant } }));
      return [...users, ...ms, ...docs];
    } finally {
      await c.end();
    }
  }
  const sorted = (facts: Record<string, unknown>[]) => facts.map((f) => JSON.stringify({ type: f.type, key: f.key, value: f.value })).sort();
  async function factsOf(env: string): Promise<Record<string, unknown>[]> {
    return (await client(server.url, ADMIN).get(`/v1/envs/${env}/snapshot`)).body.facts;
  }
  async function untilEqual(env: string, url: string, what: string, src?: CliChild, extra: Record<string, unknown>[] = [], everyMs = 250): Promise<void> {
    let diff = '';
    try {
      // The server runs in this process: compare cheaply (sorted strings, once), every 250 ms.
      await waitUntil(async () => {
        const [a, b] = [sorted(await factsOf(env)), sorted([...(await expected(url)), ...extra])];
        if (a.length === b.length && a.every((x, i) => x === b[i])) return true;
        const [sa, sb] = [new Set(a), new Set(b)];
        diff = `only in the env: ${a.filter((x) => !sb.has(x)).slice(0, 3).join(' ')}\nonly in the tables: ${b.filter((x) => !sa.has(x)).slice(0, 3).join(' ')}`;
        return false;
      }, what, 90_000, everyMs);
    } catch (e) {
      const slots = JSON.stringify((await pgc.sql('SELECT slot_name, active, active_pid, confirmed_flush_lsn::text, restart_lsn::text FROM pg_replication_slots')).rows);
      const activity = JSON.stringify((await pgc.sql(`SELECT pid, application_name, state, backend_type, left(query, 80) AS q FROM pg_stat_activity WHERE datname IS NOT NULL OR backend_type = 'walsender'`)).rows);
      const recorded = JSON.stringify((await client(server.url, ADMIN).get(`/v1/envs/${env}/sources`)).body);
      throw new Error(`${(e as Error).message}\n${diff}\nslots ${slots}\nactivity ${activity}\nrecorded ${recorded}\n${src?.err.slice(-3000) ?? ''}`);
    }
  }

  it('first snapshot, then every change: inserts, key-changing updates, deletes, TRUNCATE, unchanged TOAST; one transaction one version', async () => {
    const url = await database('crm');
    const env = newEnv();
    const db = await connect(url);
    try {
      await db.query(`INSERT INTO users VALUES ('ada@x', 'Ada', 'eng', 36, repeat('long bio ', 2000)), ('bob@x', 'Bob', 'ops', 41, 'short')`);
      await db.query(`INSERT INTO memberships (user_email, role, tenant) VALUES ('ada@x', 'editor', 'acme'), ('bob@x', 'viewer', 'acme')`);
      // A fact of the type that no mapping's key can make: another writer's, left alone.
      await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'relationship', key: 'folder:f1#owner@user:z', value: { object: 'folder:f1', relation: 'owner', subject: 'user:z' } }] });
      const src = run(config('crm', url), env);
      const other = [{ type: 'relationship', key: 'folder:f1#owner@user:z', value: { object: 'folder:f1', relation: 'owner', subject: 'user:z' } }];
      await untilEqual(env, url, 'the first snapshot', src, other);

      // A 50-row transaction: one version with all of it.
      const before = (await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version;
      await db.query('BEGIN');
      for (let i = 0; i < 50; i++) await db.query('INSERT INTO doc_editors VALUES ($1, $2, $3)', [`d${i}`, 'ada@x', 'acme']);
      await db.query('COMMIT');
      await waitUntil(async () => (await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version > before, 'the transaction');
      const page = (await client(server.url, ADMIN).get(`/v1/envs/${env}/changes?after=${before}`)).body;
      expect(page.changes[0].ops).toHaveLength(50);

      // A key-changing update: the old fact goes in the same version as the new one.
      await db.query(`UPDATE memberships SET role = 'admin' WHERE user_email = 'bob@x'`);
      await db.query(`DELETE FROM users WHERE email = 'bob@x'`);
      // Unchanged TOAST: only age changes; bio (2000 × 9 bytes, TOASTed) is not sent and must be kept.
      await db.query(`UPDATE users SET age = 37 WHERE email = 'ada@x'`);
      await db.query(`UPDATE doc_editors SET user_email = 'carol@x' WHERE doc_id = 'd1'`);
      await untilEqual(env, url, 'the changes', src, other);
      const ada = (await client(server.url, ADMIN).get(`/v1/envs/${env}/facts/user/ada@x`)).body.value;
      expect(ada.attributes.age).toBe(37);
      expect(ada.attributes.bio).toHaveLength(18_000);

      // TRUNCATE: the table's owned facts go; another writer's relationship stays.
      await db.query('TRUNCATE doc_editors');
      await untilEqual(env, url, 'the truncate', src, other);

      // Recorded positions and an idle heartbeat: the position moves though no mapped row changed.
      const recorded = async () => (await client(server.url, ADMIN).get(`/v1/envs/${env}/sources`)).body[0];
      const now = await recorded();
      await waitUntil(async () => (await recorded()).position > now.position, 'a heartbeat position', 20_000, 200);
      const head = (await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version;
      expect((await recorded()).version).toBe(head);
      // The slot's confirmed position never passes what the server recorded.
      const slot = (await pgc.sql(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'slot_crm'`)).rows[0];
      expect(slot).toBeDefined();
      // source status FILE: the recorded position beside the slot as Postgres reports it.
      const status = await cli(['source', 'status', join(dir, 'crm.yaml'), '--env', env, '--json'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN });
      expect(status.code, status.err).toBe(0);
      const [row] = JSON.parse(status.out) as { name: string; version: number; slot: { name: string; exists: boolean; active: boolean; retained_bytes: number; confirmed: string } }[];
      expect(row).toMatchObject({ name: 'crm', slot: { name: 'slot_crm', exists: true, active: true } });
      expect(row!.slot.retained_bytes).toBeGreaterThanOrEqual(0);
      expect(row!.slot.confirmed).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      src.child.kill('SIGTERM');
      expect((await within(src.done, 'the source to stop on SIGTERM', 20_000)).code).toBe(0);
    } finally {
      await db.end();
    }
  }, 180_000);

  it('kill -9 at random moments while transactions commit: facts equal the tables, each transaction applied once', async () => {
    const url = await database('churn');
    const env = newEnv();
    const db = await connect(url);
    const file = config('churn', url);
    let stop = false;
    let committed = 0;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        await db.query('BEGIN');
        await db.query('INSERT INTO doc_editors VALUES ($1, $2, $3)', [`t${i}`, 'u@x', 'acme']);
        await db.query('INSERT INTO memberships (user_email, role, tenant) VALUES ($1, $2, $3)', [`u${i}@x`, 'viewer', 'acme']);
        if (i % 3 === 0) await db.query('DELETE FROM doc_editors WHERE doc_id = $1', [`t${i - 1}`]);
        await db.query('COMMIT');
        committed = i + 1;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      // 4 in CI; `npm run soak` (SOAK_SCALE=20) kills it 80 times.
      const kills = 4 * SOAK_SCALE;
      for (let k = 0; k < kills; k++) {
        const src = run(file, env);
        await waitUntil(() => src.err.includes('streaming from') || src.err.includes('standing by'), 'the source to start', 60_000);
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 900));
        src.child.kill('SIGKILL');
        await src.done;
      }
      stop = true;
      await writer;
      const src = run(file, env);
      await untilEqual(env, url, `facts equal to the tables after ${committed} transactions and ${kills} kills`, src);
      // Each transaction once: the upsert of its membership is in exactly one version.
      const counts = new Map<string, number>();
      let after = 0;
      for (;;) {
        const page = (await client(server.url, ADMIN).get(`/v1/envs/${env}/changes?after=${after}&limit=1000`)).body;
        if (page.changes.length === 0) break;
        for (const c of page.changes) {
          for (const op of c.ops) if (op.type === 'role_assignment' && op.op === 'upsert') counts.set(op.key, (counts.get(op.key) ?? 0) + 1);
          after = c.version;
        }
      }
      const twice = [...counts].filter(([, n]) => n > 1);
      expect(twice, 'memberships written more than once').toEqual([]);
      expect(counts.size).toBe(committed);
      src.child.kill('SIGTERM');
      await src.done;
    } finally {
      stop = true;
      await writer.catch(() => undefined);
      await db.end();
    }
  }, 240_000);

  it('a first snapshot of 100,000 rows while a writer inserts, updates and deletes: after catch-up, nothing missing, nothing extra', async () => {
    const url = await database('busy');
    const env = newEnv();
    const db = await connect(url);
    let stop = false;
    try {
      await db.query(`INSERT INTO memberships (user_email, role, tenant) SELECT 'u' || g || '@x', 'viewer', 't' || (g % 10) FROM generate_series(1, 100000) g`);
      const writer = (async () => {
        for (let i = 0; !stop; i++) {
          await db.query('INSERT INTO memberships (user_email, role, tenant) VALUES ($1, $2, $3)', [`w${i}@x`, 'viewer', 'acme']);
          await db.query(`UPDATE memberships SET role = 'editor' WHERE user_email = $1`, [`u${(i * 7919) % 100000 + 1}@x`]);
          await db.query('DELETE FROM memberships WHERE user_email = $1', [`u${(i * 104729) % 100000 + 1}@x`]);
        }
      })();
      const src = run(config('busy', url), env);
      await waitUntil(() => src.err.includes('snapshot applied'), 'the snapshot', 120_000, 100);
      // Writes go on past the snapshot, then stop: the stream must carry everything committed since its point.
      await new Promise((r) => setTimeout(r, 500));
      stop = true;
      await writer;
      // A 100k comparison is heavy for the server in this process: not too often.
      await untilEqual(env, url, 'the facts after the snapshot and the stream', src, [], 2000);
      src.child.kill('SIGTERM');
      await src.done;
    } finally {
      stop = true;
      await db.end();
    }
  }, 240_000);

  it('kill -9 during the first snapshot: after a restart the facts equal the tables and there is one slot', async () => {
    const url = await database('early');
    const env = newEnv();
    const db = await connect(url);
    try {
      // More than one write holds (MAX_OPS_PER_WRITE 20,000): the snapshot is several versions, with room to be cut between them.
      await db.query(`INSERT INTO memberships (user_email, role, tenant) SELECT 'u' || g || '@x', 'viewer', 't' || (g % 10) FROM generate_series(1, 45000) g`);
      const file = config('early', url);
      const first = run(file, env);
      await waitUntil(() => first.err.includes('snapshot: table read') || first.err.includes('snapshot: reading'), 'the snapshot to start', 60_000, 10);
      await new Promise((r) => setTimeout(r, Math.random() * 400));
      first.child.kill('SIGKILL');
      await first.done;
      const again = run(file, env);
      await db.query(`INSERT INTO memberships (user_email, role, tenant) VALUES ('late@x', 'admin', 'acme')`);
      await untilEqual(env, url, 'the facts after a restart during the first snapshot', again);
      expect((await pgc.sql(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name LIKE 'slot_early%'`)).rows[0].n).toBe(1);
      again.child.kill('SIGTERM');
      await again.done;
    } finally {
      await db.end();
    }
  }, 180_000);

  it('a slot dropped while the source was stopped: exit 3 with the one line; resync restores equality and run continues', async () => {
    const url = await database('lost');
    const env = newEnv();
    const file = config('lost', url);
    const db = await connect(url);
    try {
      await db.query(`INSERT INTO users VALUES ('a@x', 'A', 'eng', 1, 'x')`);
      const first = run(file, env);
      await untilEqual(env, url, 'the first snapshot');
      first.child.kill('SIGTERM');
      await first.done;
      await db.query(`SELECT pg_drop_replication_slot('slot_lost')`);
      await db.query(`INSERT INTO users VALUES ('b@x', 'B', 'ops', 2, 'y')`);
      const again = await within(run(file, env).done, 'the source to stop', 20_000);
      expect(again.code).toBe(3);
      const line = again.err.trim().split('\n').pop()!;
      expect(line).toMatch(/^factsync: source lost: replication slot "slot_lost" is gone \(recorded position \d{4}:\d{20}:[0-9A-F]{16}[.-]\d{4}\); .*run npx factsync source resync .*lost\.yaml lost$/);
      expect(sorted(await factsOf(env))).not.toEqual(sorted(await expected(url)));
      const resynced = await cli(['source', 'resync', file, 'lost', '--env', env], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN });
      expect(resynced.code, resynced.err).toBe(0);
      expect(sorted(await factsOf(env))).toEqual(sorted(await expected(url)));
      const resumed = run(file, env);
      await db.query(`DELETE FROM users WHERE email = 'a@x'`);
      await untilEqual(env, url, 'streaming after the resync');
      resumed.child.kill('SIGTERM');
      await resumed.done;
    } finally {
      await db.end();
    }
  }, 120_000);

  it('idle mapped tables: the slot moves forward while other tables are written (heartbeats, empty transactions), pinning no WAL for them', async () => {
    const url = await database('idle');
    const env = newEnv();
    const db = await connect(url);
    await db.query('CREATE TABLE unrelated (id serial PRIMARY KEY, junk text)');
    const src = run(config('idle', url), env);
    try {
      await waitUntil(async () => (await client(server.url, ADMIN).get(`/v1/envs/${env}/sources`)).body.length === 1, 'the source streaming');
      const lsn = async () => (await pgc.sql(`SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = 'slot_idle'`)).rows[0].l as string;
      const behind = async () => Number((await pgc.sql(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS d FROM pg_replication_slots WHERE slot_name = 'slot_idle'`)).rows[0].d);
      const before = await lsn();
      const head = (await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version;
      // Megabytes of WAL for a table no mapping reads.
      for (let i = 0; i < 20; i++) await db.query(`INSERT INTO unrelated (junk) SELECT repeat('x', 500) FROM generate_series(1, 1000)`);
      const written = await behind();
      expect(written).toBeGreaterThan(5_000_000);
      await waitUntil(async () => (await behind()) < written / 4 && (await lsn()) !== before, 'the slot confirmed past the other table\'s WAL', 30_000, 200);
      // No version for it: a heartbeat records a position, not a fact.
      expect((await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version).toBe(head);
    } finally {
      src.child.kill('SIGTERM');
      await src.done;
      await db.end();
    }
  }, 90_000);

  it('a slot dropped while streaming: exit 3 within 5 s with the one line, nothing written after', async () => {
    const url = await database('gone');
    const env = newEnv();
    const file = config('gone', url);
    const src = run(file, env);
    await waitUntil(async () => (await client(server.url, ADMIN).get(`/v1/envs/${env}/sources`)).body.length === 1, 'the source streaming');
    await waitUntil(async () => (await pgc.sql(`SELECT active FROM pg_replication_slots WHERE slot_name = 'slot_gone'`)).rows[0]?.active === true, 'the slot active');
    // End its walsender and drop the slot before the source reconnects.
    await waitUntil(async () => {
      // It reconnects within a fraction of a second: end its walsender again until the drop gets in between.
      await pgc.sql(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'slot_gone' AND active_pid IS NOT NULL`);
      const r = await pgc.sql(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'slot_gone' AND NOT active`).catch(() => ({ rowCount: 0 }));
      return (r.rowCount ?? 0) > 0;
    }, 'the slot dropped', 15_000, 20);
    const t0 = Date.now();
    const r = await within(src.done, 'the source to stop', 20_000, () => src.err);
    expect(Date.now() - t0).toBeLessThan(5000 * (Number(process.env.TEST_TIME_SCALE) || 1));
    expect(r.code).toBe(3);
    expect(r.err.trim().split('\n').pop()).toMatch(/^factsync: source gone: replication slot "slot_gone" cannot be used \(.*does not exist.*\); run npx factsync source resync .*gone\.yaml gone$/);
  }, 60_000);

  it('the server away for 30 s: the slot confirms nothing meanwhile, and nothing is lost after', async () => {
    const url = await database('away');
    const env = newEnv();
    const dataDir = mkdtempSync(join(tmpdir(), 'factsync-away-'));
    const { freePort } = await import('../src/ports.js');
    const port = String(await freePort());
    let own = await startServer({ env: { DATA_DIR: dataDir, PORT: port } });
    const file = config('away', url);
    const src = startCli(['source', 'run', file, '--env', env], { FACTSYNC_URL: own.url, FACTSYNC_TOKEN: ADMIN, LOG_LEVEL: 'info' });
    running.push(src);
    const db = await connect(url);
    const confirmed = async () => (await pgc.sql(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'slot_away'`)).rows[0]?.lsn as string | undefined;
    try {
      await db.query(`INSERT INTO users VALUES ('a@x', 'A', 'eng', 1, 'x')`);
      await waitUntil(async () => (await client(own.url, ADMIN).get(`/v1/envs/${env}/facts/user/a@x`)).status === 200, 'the first row');
      await own.close();
      const before = await confirmed();
      for (let i = 0; i < 20; i++) await db.query('INSERT INTO memberships (user_email, role, tenant) VALUES ($1, $2, $3)', [`m${i}@x`, 'viewer', 'acme']);
      // 30 s away, as an outage of the server or its store would be.
      await new Promise((r) => setTimeout(r, 30_000));
      // Nothing was recorded, so nothing was confirmed: the slot keeps every transaction.
      expect(await confirmed()).toBe(before);
      expect(src.err).toMatch(/retrying until the server answers/);
      own = await startServer({ env: { DATA_DIR: dataDir, PORT: port } });
      const head = async () => (await client(own.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version;
      await waitUntil(async () => JSON.stringify(sorted(await (await client(own.url, ADMIN).get(`/v1/envs/${env}/snapshot`)).body.facts)) === JSON.stringify(sorted(await expected(url))), 'every transaction after the server came back', 60_000, 100);
      expect(src.err.match(/retrying until the server answers/g)).toHaveLength(1);
      expect(await head()).toBeGreaterThan(1);
    } finally {
      src.child.kill('SIGTERM');
      await src.done;
      await db.end();
      await own.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  it('pointed at another cluster (its system id differs), even one with a slot of that name: exit 3, nothing written', async () => {
    const url = await database('moved');
    const env = newEnv();
    const first = run(config('moved', url), env);
    await waitUntil(async () => (await client(server.url, ADMIN).get(`/v1/envs/${env}/sources`)).body.length === 1, 'the first snapshot recorded');
    first.child.kill('SIGTERM');
    await first.done;
    const head = (await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version;
    // Another cluster with the same database, tables and slot name (a restored dump, say).
    const other = await startPostgres();
    try {
      await other.sql('CREATE DATABASE moved');
      const otherUrl = other.url.replace(/\/postgres$/, '/moved');
      const c = await connect(otherUrl);
      await c.query(`CREATE TABLE users (email text PRIMARY KEY, first_name text, dept text, age int, bio text);
        CREATE TABLE memberships (id serial PRIMARY KEY, user_email text NOT NULL, role text NOT NULL, tenant text NOT NULL, UNIQUE (user_email, role, tenant));
        ALTER TABLE memberships REPLICA IDENTITY FULL;
        CREATE TABLE doc_editors (doc_id text, user_email text, tenant text NOT NULL, PRIMARY KEY (doc_id, user_email));
        INSERT INTO users VALUES ('intruder@x', 'I', 'x', 1, 'x');`);
      await c.query(`SELECT pg_create_logical_replication_slot('slot_moved', 'pgoutput')`);
      await c.end();
      const moved = startCli(['source', 'run', config('moved', otherUrl), '--env', env], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN, LOG_LEVEL: 'debug' }); running.push(moved);
      const r = await within(moved.done, 'the source to stop', 20_000, () => moved.err);
      expect(r.code).toBe(3);
      expect(r.err.trim().split('\n').pop()).toMatch(/^factsync: source moved: the database is another one \(system id \d+; the recorded position .* is of \d+\); .*run npx factsync source resync/);
      expect((await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version).toBe(head);
    } finally {
      await other.stop();
    }
  }, 120_000);

  it('validation at start: one line per mistake, exit 2, nothing written', async () => {
    const url = await database('bad');
    const db = await connect(url);
    await db.query('CREATE TABLE loose (a text, b text)');
    // Unique on code, but deletes carry only the primary key (id): the key cannot be made from a delete.
    await db.query('CREATE TABLE ident (id int PRIMARY KEY, code text UNIQUE NOT NULL)');
    await db.end();
    const env = newEnv();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, `sources:
  - name: bad
    postgres: { url: "${url}", publication: pub_bad, slot: slot_bad, create_publication: true }
    tables:
      - { table: public.memberships, type: role_assignment, key: "{user_email}/{org}/{tenant}", value: { user: "{user_email}" } }
      - { table: public.nope, type: user, key: "{id}" }
      - { table: public.users, type: user, key: "{first_name}" }
      - { table: public.loose, type: thing, key: "{a}" }
      - { table: public.ident, type: thing, key: "{code}" }
`);
    const r = await cli(['source', 'run', file, '--env', env], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN });
    expect(r.code).toBe(2);
    expect(r.err).toContain('tables[0].key: column "org" is not in public.memberships (columns: id, user_email, role, tenant)');
    expect(r.err).toContain('tables[1].table: there is no table public.nope in this database');
    expect(r.err).toContain('tables[2].key: "{first_name}" does not identify a row of public.users');
    expect(r.err).toMatch(/tables\[3\]\.key: "\{a\}" does not identify a row of public\.loose: .*it has none: add a primary key/);
    expect(r.err).toContain('tables[4].key: deletes of public.ident carry only (id), not every key column; run ALTER TABLE "public"."ident" REPLICA IDENTITY FULL, or build the key from the primary key');
    expect((await pgc.sql(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = 'slot_bad'`)).rows[0].n).toBe(0);
    // A YAML mistake names its path.
    writeFileSync(file, 'sources:\n  - name: bad\n    postgres: { url: x, publication: p, slot: "Bad-Slot" }\n    tables: []\n');
    const shape = await cli(['source', 'run', file, '--env', env], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN });
    expect(shape.code).toBe(2);
    expect(shape.err).toMatch(/sources\[0\]\.postgres\.slot: /);
  }, 60_000);

  it('a check on an agent answers from a row committed in Postgres', async () => {
    const url = await database('e2e');
    const env = newEnv();
    await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [
      { op: 'upsert', type: 'resource', key: 'doc', value: { actions: ['read'] } },
      { op: 'upsert', type: 'role', key: 'reader', value: { permissions: ['doc:read'] } },
    ] });
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    const src = run(config('e2e', url), env);
    const db = await connect(url);
    try {
      const check = async () => (await client(agent.url).post('/allowed', { user: 'zoe@x', action: 'read', resource: { type: 'doc', tenant: 'acme' } })).body.allow;
      await waitUntil(async () => (await client(server.url, ADMIN).get(`/v1/envs/${env}/sources`)).body.length === 1, 'the source to start');
      expect(await check()).toBe(false);
      await db.query(`INSERT INTO memberships (user_email, role, tenant) VALUES ('zoe@x', 'reader', 'acme')`);
      await waitUntil(check, 'allow: true on the agent after the commit', 30_000, 50);
    } finally {
      await db.end();
      src.child.kill('SIGTERM');
      await src.done;
      await agent.close();
    }
  }, 120_000);

  // Last: it lowers max_slot_wal_keep_size for the whole cluster.
  it('a slot invalidated by max_slot_wal_keep_size while the source was stopped: exit 3 naming it; resync restores', async () => {
    const url = await database('wal');
    const env = newEnv();
    const file = config('wal', url);
    const db = await connect(url);
    try {
      await db.query(`INSERT INTO users VALUES ('a@x', 'A', 'eng', 1, 'x')`);
      const first = run(file, env);
      await waitUntil(async () => (await client(server.url, ADMIN).get(`/v1/envs/${env}/sources`)).body.length === 1, 'the first snapshot recorded');
      first.child.kill('SIGTERM');
      await first.done;
      await pgc.sql(`ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`);
      await pgc.sql('SELECT pg_reload_conf()');
      // More WAL than the slot may keep, then a checkpoint: Postgres invalidates the slot.
      for (let i = 0; i < 3; i++) {
        await db.query(`INSERT INTO users SELECT 'bulk' || g || '-${i}@x', 'B', 'ops', g, repeat('x', 200) FROM generate_series(1, 20000) g`);
        await db.query('SELECT pg_switch_wal()');
      }
      await db.query('CHECKPOINT');
      await waitUntil(async () => (await pgc.sql(`SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'slot_wal'`)).rows[0]?.wal_status === 'lost', 'the slot invalidated', 30_000, 200);
      const head = (await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version;
      const t0 = Date.now();
      const r = await within(run(file, env).done, 'the source to stop', 20_000);
      expect(r.code).toBe(3);
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(r.err.trim().split('\n').pop()).toMatch(/^factsync: source wal: replication slot "slot_wal" was invalidated .*max_slot_wal_keep_size.*run npx factsync source resync .*wal\.yaml wal$/);
      expect((await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version).toBe(head);
      await pgc.sql('ALTER SYSTEM RESET max_slot_wal_keep_size');
      await pgc.sql('SELECT pg_reload_conf()');
      const resynced = await cli(['source', 'resync', file, 'wal', '--env', env], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: ADMIN });
      expect(resynced.code, resynced.err).toBe(0);
      expect(sorted(await factsOf(env))).toEqual(sorted(await expected(url)));
    } finally {
      await db.end();
      await pgc.sql('ALTER SYSTEM RESET max_slot_wal_keep_size').catch(() => undefined);
      await pgc.sql('SELECT pg_reload_conf()').catch(() => undefined);
    }
  }, 120_000);
});
