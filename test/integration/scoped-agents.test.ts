import { afterEach, describe, expect, inject, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN, AGENT, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { RawAgent } from '../src/raw-agent.js';
import { client, del, upsert } from '../src/http.js';
import { waitUntil } from '../src/wait.js';
import { laggingReplicaPair } from '../src/failover.js';

/**
 * Scoped agents (AGENT_TENANTS): each holds its tenants' share of the env and
 * the facts of no tenant, applies every version (most carry nothing for it),
 * acks and is awaited like a whole agent, and refuses (421) other tenants.
 */
const closers: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of closers.reverse()) await c();
  closers.length = 0;
});

async function server(env: Record<string, string> = {}): Promise<RunningServer> {
  const s = await startServer({ redisUrl: inject('redisUrl'), env });
  closers.push(() => s.close());
  return s;
}
async function agent(url: string, env: Record<string, string>) {
  const a = await startAgent(url, { env });
  closers.push(() => a.close());
  await waitUntil(() => a.status().ready, `${env.AGENT_ID} ready`);
  return a;
}
const policy = [
  upsert('resource', 'document', { actions: ['read', 'write'] }),
  upsert('role', 'viewer', { permissions: ['document:read'] }),
  upsert('role', 'editor', { permissions: ['document:read', 'document:write'] }),
];
const tenantFacts = (t: string, n: number) => [
  upsert('tenant', t, { name: t.toUpperCase() }),
  ...Array.from({ length: n }, (_, i) => upsert('role_assignment', `u${i}/viewer/${t}`, { user: `u${i}`, role: 'viewer', tenant: t })),
  ...Array.from({ length: n }, (_, i) => upsert('resource_instance', `document:${t}-${i}`, { tenant: t, attributes: { n: i } })),
  upsert('ticket', `${t}-t1`, { tenant: t, title: 'custom facts name their tenant' }),
];
const users = (n: number) => Array.from({ length: n }, (_, i) => upsert('user', `u${i}`, { email: `u${i}@x.io` }));
const keysOf = (a: Awaited<ReturnType<typeof agent>>, type: string) => [...a.store.all()].filter((f) => f.type === type).map((f) => f.key).sort();

describe('scoped agents (AGENT_TENANTS)', () => {
  it('hold only their share, apply and ack versions that carried nothing for them, and are awaited by all', async () => {
    const s = await server();
    const env = newEnv();
    const admin = client(s.url, ADMIN);
    const write = (ops: unknown[], headers: Record<string, string> = {}) => admin.post(`/v1/envs/${env}/facts`, { ops }, headers);
    expect((await write([...policy, ...users(4), ...tenantFacts('acme', 3), ...tenantFacts('globex', 3), ...tenantFacts('initech', 3)])).status).toBe(200);

    const whole = await agent(s.url, { AGENT_ENV: env, AGENT_ID: 'whole' });
    const acme = await agent(s.url, { AGENT_ENV: env, AGENT_ID: 'acme', AGENT_TENANTS: 'acme' });
    const two = await agent(s.url, { AGENT_ENV: env, AGENT_ID: 'two', AGENT_TENANTS: 'globex,acme' });

    expect(keysOf(acme, 'tenant')).toEqual(['acme']);
    expect(keysOf(acme, 'role_assignment')).toEqual(['u0/viewer/acme', 'u1/viewer/acme', 'u2/viewer/acme']);
    expect(keysOf(acme, 'resource_instance')).toEqual(['document:acme-0', 'document:acme-1', 'document:acme-2']);
    expect(keysOf(acme, 'ticket')).toEqual(['acme-t1']);
    // Facts of no tenant (users, policy) are every scope's.
    expect(keysOf(acme, 'user')).toEqual(keysOf(whole, 'user'));
    expect(keysOf(acme, 'role')).toEqual(['editor', 'viewer']);
    expect(keysOf(two, 'tenant')).toEqual(['acme', 'globex']);
    expect(whole.store.size).toBe(3 + 4 + 3 * 8);
    expect(acme.store.size).toBe(3 + 4 + 8);

    // A version for globex only: acme applies it (nothing changes) and acks it; `all` waits for it too.
    const w = await write([upsert('role_assignment', 'u3/editor/globex', { user: 'u3', role: 'editor', tenant: 'globex' })], { 'x-wait-for': 'all', 'x-wait-timeout': '10' });
    expect(w.body.sync).toMatchObject({ synced: true });
    expect([...w.body.sync.acked].sort()).toEqual(['acme', 'two', 'whole']);
    expect(acme.status().applied).toBe(w.body.version);
    expect(acme.store.size).toBe(3 + 4 + 8);
    expect(two.store.get('role_assignment', 'u3/editor/globex')).toBeDefined();
    const st = (await client(acme.url).get('/v1/status')).body;
    expect(st).toMatchObject({ tenants: ['acme'], applied: w.body.version });

    // Checks in a served tenant answer as the whole agent; another tenant is 421 naming the served ones.
    const check = (a: { url: string }, tenant: string | undefined, key = `${tenant}-0`) =>
      client(a.url).post('/allowed', { user: 'u0', action: 'read', resource: { type: 'document', key, ...(tenant ? { tenant } : {}) } });
    expect((await check(acme, 'acme')).body.allow).toBe(true);
    expect((await check(whole, 'acme')).body.allow).toBe(true);
    const refused = await check(acme, 'globex');
    expect(refused.status).toBe(421);
    expect(refused.body).toMatchObject({ error: 'tenant_not_served', tenants: ['acme'] });
    expect(refused.body.message).toContain('globex');
    // Without a tenant, an instance it holds names its tenant; one it does not hold may be another tenant's.
    expect((await check(acme, undefined, 'acme-1')).body.allow).toBe(true);
    expect((await check(acme, undefined, 'globex-1')).status).toBe(421);
    expect((await check(whole, undefined, 'globex-1')).body.allow).toBe(true);
    // Reads that would list every tenant are refused; reads within a served tenant answer.
    expect((await client(acme.url).get('/v2/facts/p/e/tenants')).status).toBe(421);
    expect((await client(acme.url).get('/v1/facts/role_assignment/u0%2Fviewer%2Fglobex')).status).toBe(421);
    expect((await client(acme.url).get('/v1/facts/resource_instance/document:globex-0')).status).toBe(421);
    expect((await client(acme.url).get('/v1/facts/resource_instance/document:acme-0')).status).toBe(200);
    expect((await client(acme.url).get('/v1/facts/user/nobody')).status).toBe(404);
    expect((await client(acme.url).get('/v2/facts/p/e/tenants/acme')).body).toMatchObject({ key: 'acme' });
    expect((await client(acme.url).get('/v2/facts/p/e/tenants/globex')).status).toBe(421);
    expect((await client(acme.url).get('/v2/facts/p/e/role_assignments?tenant=acme')).status).toBe(200);
    expect((await client(acme.url).get('/v2/facts/p/e/role_assignments')).status).toBe(421);
    const perms = await client(acme.url).post('/user-permissions', { user: { key: 'u0' }, tenants: ['acme'] });
    expect(perms.status).toBe(200);
    expect((await client(acme.url).post('/user-permissions', { user: { key: 'u0' } })).status).toBe(421);
    // Deleting a user deletes its role assignments in every tenant: a scoped agent holds only its own, so it refuses.
    const userDelete = await client(acme.url).call('DELETE', '/v1/facts/users/u0');
    expect(userDelete.status).toBe(421);
    expect(userDelete.body.message).toMatch(/every tenant/);

    // A tuple written through the Permit API with a tenant belongs to that tenant.
    const tuple = await client(whole.url).post('/v2/facts/p/e/relationship_tuples', { subject: 'user:u3', relation: 'viewer', object: 'document:globex-0', tenant: 'globex' }, { 'x-wait-for': 'all', 'x-wait-timeout': '10' });
    expect(tuple.status, JSON.stringify(tuple.body)).toBe(200);
    expect(tuple.body.tenant).toBe('globex');
    await waitUntil(() => two.store.get('relationship', 'document:globex-0#viewer@user:u3'), 'the tuple on two');
    expect(two.store.get('relationship', 'document:globex-0#viewer@user:u3')?.value).toMatchObject({ tenant: 'globex' });
    expect(acme.store.get('relationship', 'document:globex-0#viewer@user:u3')).toBeUndefined();
    const listed = await client(two.url).get('/v2/facts/p/e/relationship_tuples?tenant=globex');
    expect(listed.body.map((t: { object: string; tenant: string }) => [t.object, t.tenant])).toEqual([['document:globex-0', 'globex']]);

    // A resource instance that moves to another tenant leaves the old tenant's agents.
    await write([upsert('resource_instance', 'document:acme-2', { tenant: 'globex' })], { 'x-wait-for': 'all', 'x-wait-timeout': '10' });
    expect(acme.store.get('resource_instance', 'document:acme-2')).toBeUndefined();
    expect(two.store.get('resource_instance', 'document:acme-2')?.value).toMatchObject({ tenant: 'globex' });
    // Deletes reach the scopes whose facts they remove.
    await write([del('role_assignment', 'u1/viewer/acme'), del('ticket', 'acme-t1')], { 'x-wait-for': 'all', 'x-wait-timeout': '10' });
    expect(acme.store.get('role_assignment', 'u1/viewer/acme')).toBeUndefined();
    expect(acme.store.get('ticket', 'acme-t1')).toBeUndefined();
  });

  it('a share never names another tenant\'s key: deletes and moves reach only the tenant that held the fact', async () => {
    const s = await server();
    const env = newEnv();
    const admin = client(s.url, ADMIN);
    await admin.post(`/v1/envs/${env}/facts`, { ops: [...policy, ...tenantFacts('acme', 1), ...tenantFacts('globex', 1),
      upsert('relationship', 'document:globex-0#viewer@user:u0', { object: 'document:globex-0', relation: 'viewer', subject: 'user:u0', tenant: 'globex' })] });
    const acme = await agent(s.url, { AGENT_ENV: env, AGENT_ID: 'acme-only', AGENT_TENANTS: 'acme' });
    const before = (await admin.get(`/v1/envs/${env}/head`)).body.version as number;
    await admin.post(`/v1/envs/${env}/facts`, { ops: [del('resource_instance', 'document:globex-0'), del('relationship', 'document:globex-0#viewer@user:u0'), del('ticket', 'globex-t1')] });
    await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('resource_instance', 'document:acme-0', { tenant: 'globex' })] });
    const moved = await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('resource_instance', 'document:acme-0', { tenant: 'initech' })] });
    const page = await admin.get(`/v1/envs/${env}/changes?after=${before}&tenants=acme`);
    const text = JSON.stringify(page.body.changes);
    expect(text).not.toContain('globex-0');
    expect(text).not.toContain('globex-t1');
    // The move out of acme is a delete for acme; the next move (globex → initech) is nothing for acme.
    expect(page.body.changes.flatMap((c: { ops: unknown[] }) => c.ops)).toEqual([{ op: 'delete', type: 'resource_instance', key: 'document:acme-0' }]);
    await waitUntil(() => acme.store.version === moved.body.version, 'the acme agent at the last version');
    expect(keysOf(acme, 'resource_instance')).toEqual([]);
    const globex = (await admin.get(`/v1/envs/${env}/changes?after=${before}&tenants=globex`)).body.changes.flatMap((c: { ops: { key: string }[] }) => c.ops.map((o) => o.key));
    expect(globex).toEqual(['document:globex-0', 'document:globex-0#viewer@user:u0', 'globex-t1', 'document:acme-0', 'document:acme-0']);
  });

  it('catches up after its replica goes away: resumes its share from the log on the other, without a snapshot', async () => {
    const keyPrefix = `t${Math.random().toString(36).slice(2, 10)}`;
    const s1 = await startServer({ redisUrl: inject('redisUrl'), keyPrefix, env: { HEAL_INTERVAL_MS: '200' } });
    const s2 = await startServer({ redisUrl: inject('redisUrl'), keyPrefix, env: { HEAL_INTERVAL_MS: '200' } });
    closers.push(() => s2.close());
    let s1Open = true;
    closers.push(() => s1Open && s1.close());
    const env = newEnv();
    const write = (ops: unknown[], headers: Record<string, string> = {}) => client(s2.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops }, headers);
    await write([...users(2), ...tenantFacts('acme', 1), ...tenantFacts('globex', 1)]);
    const acme = await startAgent([s1.url, s2.url], { env: { AGENT_ENV: env, AGENT_ID: 'acme', AGENT_TENANTS: 'acme' } });
    closers.push(() => acme.close());
    await waitUntil(() => acme.status().ready && acme.status().server === new URL(s1.url).origin, 'acme on s1');
    await s1.close();
    s1Open = false;
    for (let i = 2; i <= 6; i++) await write(tenantFacts(i % 2 === 0 ? 'globex' : 'acme', i));
    const last = await write([upsert('ticket', 'after-cut', { tenant: 'acme' })], { 'x-wait-for': 'acme', 'x-wait-timeout': '20' });
    expect(last.body.sync).toMatchObject({ synced: true, acked: ['acme'] });
    expect(acme.status()).toMatchObject({ applied: last.body.version, snapshots_applied: 1, server: new URL(s2.url).origin });
    expect(keysOf(acme, 'tenant')).toEqual(['acme']);
    expect(keysOf(acme, 'resource_instance')).toEqual(['document:acme-0', 'document:acme-1', 'document:acme-2', 'document:acme-3', 'document:acme-4']);
    expect(acme.store.get('ticket', 'after-cut')).toBeDefined();
  });

  it('a snapshot of the share when the log no longer reaches back, self-checked by its count', async () => {
    const s = await server({ LOG_RETENTION: '5' });
    const env = newEnv();
    const admin = client(s.url, ADMIN);
    for (let i = 0; i < 12; i++) {
      const t = i % 2 === 0 ? 'acme' : 'globex';
      expect((await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('resource_instance', `document:${i}`, { tenant: t }), upsert('user', `u${i}`, {})] })).status).toBe(200);
    }
    const acme = await agent(s.url, { AGENT_ENV: env, AGENT_ID: 'acme', AGENT_TENANTS: 'acme' });
    expect(acme.status().snapshots_applied).toBe(1);
    expect(acme.status().applied).toBe(12);
    expect(keysOf(acme, 'resource_instance')).toEqual(['document:0', 'document:10', 'document:2', 'document:4', 'document:6', 'document:8']);
    expect(keysOf(acme, 'user')).toHaveLength(12);
  });

  it('resumes from DATA_DIR with its share; restarted with other tenants it drops the file and loads the new share', async () => {
    const s = await server();
    const env = newEnv();
    const dir = await mkdtemp(join(tmpdir(), 'factsync-scoped-'));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const admin = client(s.url, ADMIN);
    const write = (ops: unknown[]) => admin.post(`/v1/envs/${env}/facts`, { ops });
    await write([...users(2), ...tenantFacts('acme', 2), ...tenantFacts('globex', 2)]);
    const base = { AGENT_ENV: env, AGENT_ID: 'p1', DATA_DIR: dir, PERSIST_INTERVAL_MS: '20' };

    const first = await startAgent(s.url, { env: { ...base, AGENT_TENANTS: 'acme' } });
    await waitUntil(() => first.status().ready, 'first ready');
    await write(tenantFacts('acme', 3)); // version 2
    await waitUntil(() => first.status().applied === 2, 'first at 2');
    await first.close();
    await write(tenantFacts('globex', 4)); // version 3, nothing for acme

    const again = await agent(s.url, { ...base, AGENT_TENANTS: 'acme' });
    await waitUntil(() => again.status().applied === 3, 'resumed to 3');
    expect(again.status().snapshots_applied).toBe(0); // resumed from the file and the log
    expect(keysOf(again, 'tenant')).toEqual(['acme']);
    expect(keysOf(again, 'resource_instance')).toEqual(['document:acme-0', 'document:acme-1', 'document:acme-2']);
    await again.close();
    closers.pop();

    const other = await agent(s.url, { ...base, AGENT_TENANTS: 'globex' });
    expect(other.status().snapshots_applied).toBe(1);
    expect(other.status().applied).toBe(3);
    expect(keysOf(other, 'tenant')).toEqual(['globex']);
    expect(keysOf(other, 'resource_instance')).toEqual(['document:globex-0', 'document:globex-1', 'document:globex-2', 'document:globex-3']);
  });

  it('subscribers may ask for a scope and types; every version comes, linked by prev', async () => {
    const s = await server();
    const env = newEnv();
    const admin = client(s.url, ADMIN);
    await admin.post(`/v1/envs/${env}/facts`, { ops: [...users(1), ...tenantFacts('acme', 1)] });
    await admin.post(`/v1/envs/${env}/facts`, { ops: tenantFacts('globex', 1) });
    const sub = await RawAgent.connect(s.url, AGENT, { type: 'hello', env, agent_id: 'cache', applied: 0, ack: false, tenants: ['acme'], types: ['role_assignment', 'user'] });
    closers.push(() => sub.close());
    await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('role_assignment', 'u0/editor/acme', { user: 'u0', role: 'editor', tenant: 'acme' })] });
    const changes = await waitUntil(() => {
      const cs = sub.messages.flatMap((m) => (m.type === 'changes' ? m.changes : []));
      return cs.at(-1)?.version === 3 ? cs : undefined;
    }, 'three versions');
    const ops = changes.flatMap((c) => c.ops.map((o) => `${o.type}:${o.key}`));
    expect(ops).toEqual(['user:u0', 'role_assignment:u0/viewer/acme', 'role_assignment:u0/editor/acme']);
    expect(changes.map((c) => c.version)).toEqual([1, 2, 3]);
    expect(changes[1]!.prev).toBe(changes[0]!.id);
    expect(changes[2]!.prev).toBe(changes[1]!.id);
    // HTTP pages of the same share.
    const page = await admin.get(`/v1/envs/${env}/changes?after=1&tenants=globex&types=tenant`);
    expect(page.body.changes.map((c: { ops: { key: string }[] }) => c.ops.map((o) => o.key))).toEqual([['globex'], []]);
    expect((await admin.get(`/v1/envs/${env}/changes?after=0&tenants=a,b%20c`)).status).toBe(400);
  });

  it('after a failover to a Redis replica that missed the last write, a scoped agent notices by the prev link and resyncs its share', async () => {
    const pair = await laggingReplicaPair(closers);
    const s = await startServer({ redisUrl: pair.url, env: { HEAL_INTERVAL_MS: '200', LEASE_MS: '3000', PING_INTERVAL_MS: '1000' } });
    closers.push(() => s.close());
    const env = newEnv();
    const acme = await agent(s.url, { AGENT_ENV: env, AGENT_ID: 'acme', AGENT_TENANTS: 'acme' });
    const put = (tenant: string, key: string, title: string, wait = '10') =>
      client(s.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('ticket', key, { tenant, title })] }, { 'x-wait-for': 'all', 'x-wait-timeout': wait });

    for (let i = 1; i <= 3; i++) expect((await put('acme', `k${i}`, `original-${i}`)).body.sync.synced).toBe(true);
    await pair.freeze(); // the replica stops here, at version 3
    // Version 4 carries nothing for acme: the agent holds only its id.
    expect((await put('globex', 'g4', 'original-4')).body).toMatchObject({ version: 4, sync: { synced: true, acked: ['acme'] } });
    expect(acme.store.version).toBe(4);

    pair.failover(); // failover: the store has versions 1..3 and the same epoch
    const rewritten = await waitUntil(async () => {
      const w = await put('acme', 'k4', 'new-4', '20');
      return w.status === 200 ? w : undefined;
    }, 'a write on the promoted replica', 20_000, 200);
    expect(rewritten.body.version).toBe(4); // the same version number, another history
    expect(rewritten.body.sync).toMatchObject({ synced: true, acked: ['acme'] });
    expect(acme.store.get('ticket', 'k4')?.value).toMatchObject({ title: 'new-4' });
    expect(acme.store.version).toBe(4);
    expect(acme.status().snapshots_applied).toBeGreaterThanOrEqual(2);
    expect([...acme.store.all()].filter((f) => f.type === 'ticket').map((f) => f.key).sort()).toEqual(['k1', 'k2', 'k3', 'k4']);
    const serverForks = (await s.metrics.historyForks.get()).values.reduce((n, v) => n + v.value, 0);
    expect(serverForks).toBeGreaterThan(0);
  });
});
