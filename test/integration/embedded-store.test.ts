import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createEmbeddedStore, DATA_FILE, type FactStore } from '@factsync/server';
import { GENESIS_ID, chainId } from '@factsync/shared';
import { AGENT, ADMIN, TOKENS, newEnv } from '../src/inproc.js';
import { spawnAgent, spawnServer, runTs, type Proc } from '../src/procs.js';
import { client, upsert } from '../src/http.js';
import { freePort } from '../src/ports.js';
import { sleep, waitUntil } from '../src/wait.js';

/**
 * The durable embedded store (SQLite under the server's DATA_DIR): what it
 * answered survives a restart and `kill -9`, the epoch with it (so agents
 * resume instead of resyncing), one server per directory, and a file that is
 * not a factsync store is refused with one line.
 */
const opts = { logRetention: 1000, idempotencyTtlSeconds: 600, inlineChangeBytes: 1000 };
const dirs: string[] = [];
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'factsync-embedded-'));
  dirs.push(d);
  return d;
};
const ts = () => new Date().toISOString();
const procs: Proc[] = [];
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop('SIGKILL')));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the embedded store keeps what it answered', () => {
  it('a reopened store has the same head, epoch, log, state, idempotency records, producer windows, source positions and usage', async () => {
    const dir = newDir();
    let s: FactStore = createEmbeddedStore({ ...opts, dataDir: dir }).store;
    const w1 = await s.write('e', { ops: [upsert('user', 'a', { n: 1 })], ts: ts(), idempotencyKey: 'k1' });
    await s.write('e', { ops: [upsert('user', 'b', { n: 2 }), upsert('user', 'a', { n: 3 })], ts: ts(), producer: { id: 'p1', seq: 1 } });
    await s.write('e', { ops: [{ op: 'delete', type: 'user', key: 'b' }], ts: ts(), source: { name: 'crm', position: 'P2' } });
    const quiet = await s.ensureEpoch('quiet');
    // A position without ops is journaled alone (no change in its group).
    await s.write('quiet', { ops: [], ts: ts(), source: { name: 'hb', position: 'H1' } });
    await s.recordUsage('e', '2026-12', ['u1', 'u2', 'u1']);
    const before = { head: await s.head('e'), changes: await s.changes('e', 0, 100), snapshot: await s.snapshot('e') };
    await s.close();

    const reopened = createEmbeddedStore({ ...opts, dataDir: dir });
    s = reopened.store;
    expect(reopened).toMatchObject({ envs: 2, facts: 1 });
    expect(s.kind).toBe('embedded');
    expect(await s.head('e')).toEqual(before.head);
    expect(await s.changes('e', 0, 100)).toEqual(before.changes);
    expect(await s.snapshot('e')).toEqual(before.snapshot);
    expect(await s.head('quiet')).toEqual({ version: 0, epoch: quiet.epoch, id: GENESIS_ID });
    // Retries after the restart are recognised, not applied again.
    expect(await s.write('e', { ops: [upsert('user', 'a', { n: 1 })], ts: ts(), idempotencyKey: 'k1' })).toEqual({ ...w1, duplicate: true });
    expect(await s.write('e', { ops: [upsert('user', 'b', { n: 2 }), upsert('user', 'a', { n: 3 })], ts: ts(), producer: { id: 'p1', seq: 1 } }))
      .toMatchObject({ version: 2, duplicate: true });
    expect(await s.usage('e', '2026-12')).toBe(2);
    expect((await s.sources('e')).map((r) => [r.name, r.position, r.version])).toEqual([['crm', 'P2', 3]]);
    expect((await s.sources('quiet')).map((r) => [r.name, r.position, r.version])).toEqual([['hb', 'H1', 0]]);
    expect(await s.write('e', { ops: [upsert('user', 'z', {})], ts: ts(), source: { name: 'crm', position: 'P1' } })).toMatchObject({ version: 3, duplicate: true });
    // And the chain continues from the kept head.
    const t = ts();
    const next = await s.write('e', { ops: [upsert('user', 'c', {})], ts: t });
    expect(next.version).toBe(4);
    expect((await s.head('e')).id).toBe(chainId(before.head.id, 4, t, JSON.stringify([upsert('user', 'c', {})])));
    await s.close();
  });

  it('the log keeps LOG_RETENTION versions across a restart', async () => {
    const dir = newDir();
    const s = createEmbeddedStore({ ...opts, logRetention: 5, dataDir: dir }).store;
    for (let i = 0; i < 12; i++) await s.write('r', { ops: [upsert('user', `u${i}`, {})], ts: ts() });
    await s.close();
    const again = createEmbeddedStore({ ...opts, logRetention: 5, dataDir: dir }).store;
    expect(await again.changes('r', 0, 100)).toMatchObject({ truncated: true, head: 12 });
    const page = await again.changes('r', 7, 100);
    expect(page.truncated ? [] : page.changes.map((c) => c.version)).toEqual([8, 9, 10, 11, 12]);
    await again.close();
  });

  it('expired idempotency records leave the file while the server runs, not only at a restart', async () => {
    const dir = newDir();
    let t = 1_000_000;
    const s = createEmbeddedStore({ ...opts, idempotencyTtlSeconds: 1, dataDir: dir, now: () => t }).store;
    for (let i = 0; i < 20; i++) await s.write('x', { ops: [upsert('user', `k${i}`, {})], ts: ts(), idempotencyKey: `key-${i}` });
    t += 5_000;
    for (let i = 0; i < 1100; i++) await s.write('x', { ops: [upsert('user', `u${i}`, {})], ts: ts() });
    await s.close();
    const db = new Database(join(dir, DATA_FILE), { readonly: true });
    expect((db.prepare('SELECT count(*) AS n FROM idempotency').get() as { n: number }).n).toBe(0);
    db.close();
  });

  it('one server per directory; another program\'s database, a torn file or garbage is refused with one line', async () => {
    const dir = newDir();
    const s = createEmbeddedStore({ ...opts, dataDir: dir }).store;
    expect(() => createEmbeddedStore({ ...opts, dataDir: dir })).toThrow(/is in use by another factsync server/);
    for (let i = 0; i < 50; i++) await s.write('t', { ops: [upsert('user', `u${i}`, { pad: 'x'.repeat(2000) })], ts: ts() });
    await s.close();

    const foreign = newDir();
    const db = new Database(join(foreign, DATA_FILE));
    db.exec('CREATE TABLE things (x TEXT)');
    db.close();
    expect(() => createEmbeddedStore({ ...opts, dataDir: foreign })).toThrow(/is a database of another program/);

    const garbage = newDir();
    writeFileSync(join(garbage, DATA_FILE), 'this is not a database, just text that is long enough to be read as one. '.repeat(100));
    expect(() => createEmbeddedStore({ ...opts, dataDir: garbage })).toThrow(/is not a factsync store|damaged/);

    // Cut the file of the store above in half: pages it points to are gone.
    truncateSync(join(dir, DATA_FILE), Math.floor(statSync(join(dir, DATA_FILE)).size / 2));
    expect(() => createEmbeddedStore({ ...opts, dataDir: dir })).toThrow(/damaged|not a factsync store/);

    // A server process prints that one line and exits.
    const out = await runTs('server/src/main.ts', [], { DATA_DIR: garbage, AUTH_TOKENS: TOKENS, PORT: '0', REDIS_URL: '' }).catch((e: Error) => e.message);
    expect(out).toMatch(/factsync server: cannot start: DATA_DIR .* (is not a factsync store|is damaged)/);
  });
});

describe('kill -9 of a server on the embedded store', () => {
  it('every answered version is there after a restart, with the same epoch; the chain continues; a connected agent resumes without a snapshot', async () => {
    const dir = newDir();
    const port = await freePort();
    const serverEnv = { DATA_DIR: dir, AUTH_TOKENS: TOKENS, PORT: String(port), PING_INTERVAL_MS: '500', LEASE_MS: '3000' };
    let server = await spawnServer(serverEnv);
    procs.push(server);
    const env = newEnv();
    const admin = client(server.url, ADMIN);
    expect((await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('user', 'seed', {})] })).status).toBe(200);
    const agent = await spawnAgent({ SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'survivor', RECONNECT_MAX_MS: '200' });
    procs.push(agent);
    await waitUntil(async () => (await client(agent.url).get('/readyz')).status === 200, 'agent ready');
    const epoch = (await admin.get(`/v1/envs/${env}/head`)).body.epoch;

    // 1,000 writes, 32 at a time; the server is killed at a random moment among them.
    const answered = new Map<number, string>();
    let sent = 0;
    const killAt = 200 + Math.floor(Math.random() * 600);
    let killed = false;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (sent < 1000 && !killed) {
        const i = sent++;
        if (i === killAt) {
          killed = true;
          server.child.kill('SIGKILL');
          return;
        }
        const r = await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', `d${i}`, { i })] }).catch(() => undefined);
        if (r?.status === 200) answered.set(r.body.version, `d${i}`);
      }
    }));
    await new Promise((resolve) => (server.child.exitCode !== null || server.child.signalCode !== null ? resolve(null) : server.child.once('exit', resolve)));
    expect(answered.size).toBeGreaterThan(100);
    const snapshotsBefore = await snapshotsOf(agent.url);
    // It bootstrapped from one (so the count is read from the right metric).
    expect(snapshotsBefore).toBeGreaterThan(0);

    server = await spawnServer(serverEnv);
    procs.push(server);
    const head = (await admin.get(`/v1/envs/${env}/head`)).body;
    expect(head.epoch).toBe(epoch);
    expect(head.version).toBeGreaterThanOrEqual(Math.max(...answered.keys()));
    // Every answered version holds the fact it wrote, and the log is one chain from the first version.
    const changes: { version: number; id: string; ts: string; ops: { key: string }[] }[] = [];
    for (let after = 0; after < head.version;) {
      const page = (await admin.get(`/v1/envs/${env}/changes?after=${after}&limit=1000`)).body;
      changes.push(...page.changes);
      after = page.changes[page.changes.length - 1].version;
    }
    expect(changes.map((c) => c.version)).toEqual(Array.from({ length: head.version }, (_, i) => i + 1));
    let id = GENESIS_ID;
    for (const c of changes) {
      id = chainId(id, c.version, c.ts, JSON.stringify(c.ops));
      expect(c.id).toBe(id);
    }
    for (const [version, key] of answered) expect(changes[version - 1]!.ops[0]!.key).toBe(key);
    const snapshot = (await admin.get(`/v1/envs/${env}/snapshot`)).body;
    const keys = new Set(snapshot.facts.map((f: { key: string }) => f.key));
    for (const key of answered.values()) expect(keys.has(key)).toBe(true);

    // The chain continues, and the agent catches up from the log: no snapshot.
    const after = await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('user', 'after-restart', {})] });
    expect(after.body.version).toBe(head.version + 1);
    await waitUntil(async () => (await client(agent.url).get('/v1/status')).body.applied >= after.body.version, 'the agent to catch up');
    expect(await snapshotsOf(agent.url)).toBe(snapshotsBefore);
    await sleep(50);
  });
});

async function snapshotsOf(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^factsync_agent_snapshots_total (\d+)/m.exec(text);
  return Number(m?.[1] ?? 0);
}
