import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nanoid } from 'nanoid';
import { createClient, FactsyncClientError, type FactsyncClient } from '@factsync/sdk';
import { ADMIN, AGENT, TOKENS, newEnv } from '../src/inproc.js';
import { spawnAgent, spawnServer, type Proc } from '../src/procs.js';
import { freePort } from '../src/ports.js';
import { ChaosProxy } from '../src/chaos-proxy.js';
import { client } from '../src/http.js';
import { sleep, waitUntil } from '../src/wait.js';

/**
 * Writing through a PDP agent and waiting for sync, with real processes:
 * two server replicas on Redis and three agents (A on r1; B and C on r2).
 */
describe('agent facts API and SDK', () => {
  const env = newEnv();
  const procs: Proc[] = [];
  let servers: Proc[];
  let A: Proc, B: Proc, C: Proc;
  let a: FactsyncClient, b: FactsyncClient, c: FactsyncClient;

  const agentEnv = (id: string, url: string) => ({ SERVER_URL: url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: id });
  const ready = (p: Proc) => waitUntil(async () => (await client(p.url).get('/readyz')).status === 200, `${p.url} ready`);

  beforeAll(async () => {
    const common = { REDIS_URL: inject('redisUrl'), KEY_PREFIX: `w${nanoid(6)}`, AUTH_TOKENS: TOKENS, LEASE_MS: '2500', PING_INTERVAL_MS: '500' };
    servers = await Promise.all([spawnServer({ ...common, REPLICA_ID: 'r1' }), spawnServer({ ...common, REPLICA_ID: 'r2' })]);
    [A, B, C] = await Promise.all([
      spawnAgent(agentEnv('A', servers[0]!.url)), spawnAgent(agentEnv('B', servers[1]!.url)), spawnAgent(agentEnv('C', servers[1]!.url)),
    ]);
    procs.push(...servers, A, B, C);
    await Promise.all([A, B, C].map(ready));
    a = createClient({ url: A.url });
    b = createClient({ url: B.url });
    c = createClient({ url: C.url });
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) if (p.child.signalCode === 'SIGSTOP') p.child.kill('SIGCONT');
    await Promise.all(procs.map((p) => p.stop()));
  });

  it('a write through A with a timeout is answered once A applied it; B reads it with at_least', async () => {
    const r = await a.waitForSync({ timeout: 5 }).users.sync('alice@x.io', { email: 'alice@x.io', first_name: 'Alice' });
    expect(r.synced).toBe(true);
    expect(r.applied).toBeGreaterThanOrEqual(r.version);
    const fact = await b.facts.get('user', 'alice@x.io', { atLeast: r.version, timeout: 5 });
    expect(fact).toEqual({ type: 'user', key: 'alice@x.io', value: { email: 'alice@x.io', first_name: 'Alice' } });
    await expect(b.facts.get('user', 'alice@x.io', { atLeast: r.version + 1000, timeout: 0.2 })).rejects.toMatchObject({ code: 'not_synced', status: 504 });
  });

  it('timeout 0 answers at once, positive times out with synced:false, negative waits until a paused agent resumes', async () => {
    B.child.kill('SIGSTOP');
    try {
      // B is stopped and cannot ack: an answer at all proves timeout 0 did not wait for it.
      const now = await a.waitForSync({ timeout: 0, waitFor: ['B'] }).write([{ op: 'upsert', type: 'doc', key: 'paused-0', value: {} }]);
      expect(now.synced).toBe(false);
      expect(now.sync?.pending).toEqual(['B']);

      const t1 = Date.now();
      const timed = await a.waitForSync({ timeout: 1, waitFor: 'all' }).write([{ op: 'upsert', type: 'doc', key: 'paused-1', value: {} }]);
      expect(timed.synced).toBe(false);
      expect(timed.sync?.pending).toContain('B');
      expect(timed.sync?.acked).toContain('A');
      expect(Date.now() - t1).toBeGreaterThanOrEqual(950);

      await expect(a.waitForSync({ timeout: 0.3, waitFor: ['B'], policy: 'fail' }).write([{ op: 'upsert', type: 'doc', key: 'paused-f', value: {} }]))
        .rejects.toMatchObject({ code: 'sync_timeout', status: 424 });

      let answered = false;
      const forever = a.waitForSync({ timeout: -1, waitFor: ['B'] }).write([{ op: 'upsert', type: 'doc', key: 'paused-2', value: {} }]).then((r) => ((answered = true), r));
      await sleep(500);
      expect(answered).toBe(false);
      B.child.kill('SIGCONT');
      const r = await forever;
      expect(r.synced).toBe(true);
      expect(r.sync?.acked).toEqual(['B']);
    } finally {
      B.child.kill('SIGCONT');
    }
  });

  it('wait_for=all over 3 agents on 2 replicas: an agent killed mid-wait stays awaited for its lease, then leaves "all"', async () => {
    const D = await spawnAgent(agentEnv('D', servers[1]!.url));
    await ready(D);
    D.child.kill('SIGSTOP');
    let answered = false;
    const waiting = a.waitForSync({ timeout: -1, waitFor: 'all' }).write([{ op: 'upsert', type: 'doc', key: 'killed', value: {} }]).then((r) => ((answered = true), r));
    await sleep(400);
    expect(answered).toBe(false); // D holds it back
    D.child.kill('SIGKILL');
    await sleep(300);
    expect(answered).toBe(false); // invariant 8: a lost socket is not an ack; D is awaited until its lease ends
    const r = await waiting;
    expect(r.synced).toBe(true);
    expect(r.sync?.acked).toEqual(['A', 'B', 'C']);
    expect(r.sync?.pending).toEqual([]);
  });

  it('every typed endpoint round-trips to every agent', async () => {
    const w = a.waitForSync({ timeout: 10, waitFor: 'all' });
    const results = [
      await w.users.sync('bob@x.io', { email: 'bob@x.io', attributes: { dept: 'eng' }, roles: [{ role: 'editor', tenant: 'acme' }, { role: 'viewer' }] }),
      await w.tenants.create('acme', { name: 'Acme', attributes: { tier: 'gold' } }),
      await w.roleAssignments.assign({ user: 'alice@x.io', role: 'admin', tenant: 'acme' }),
      await w.relationships.write({ object: 'document:1', relation: 'owner', subject: 'user:bob' }),
      await w.relationships.write('document:1#editor@group:eng#member'),
      await w.attributes.write({ entity: 'document:1', attribute: 'score', kind: 'double', value: 0.5 }),
      await w.attributes.write('document:1$is_private|boolean:true'),
      await w.attributes.write('document:1$tags|string_array:a,b'),
      await w.attributes.write('document:1$levels|integer[]:[1,2,3]'),
      await w.attributes.write('user:bob$flags|boolean_array:true,false'),
      await w.attributes.write('user:bob$weights|double_array:1.5,2'),
      await w.attributes.write('user:bob$age|integer:42'),
      await w.attributes.write('user:bob$nick|string:bobby: the builder'),
    ];
    expect(results.every((r) => r.synced)).toBe(true);
    expect(new Set(results.map((r) => r.version)).size).toBe(results.length);
    const expected: [string, string, unknown][] = [
      ['user', 'bob@x.io', { email: 'bob@x.io', attributes: { dept: 'eng' } }],
      ['role_assignment', 'bob@x.io/editor/acme', { user: 'bob@x.io', role: 'editor', tenant: 'acme' }],
      ['role_assignment', 'bob@x.io/viewer/default', { user: 'bob@x.io', role: 'viewer', tenant: 'default' }],
      ['tenant', 'acme', { name: 'Acme', attributes: { tier: 'gold' } }],
      ['role_assignment', 'alice@x.io/admin/acme', { user: 'alice@x.io', role: 'admin', tenant: 'acme' }],
      ['relationship', 'document:1#owner@user:bob', { object: 'document:1', relation: 'owner', subject: 'user:bob' }],
      ['relationship', 'document:1#editor@group:eng#member', { object: 'document:1', relation: 'editor', subject: 'group:eng#member' }],
      ['attribute', 'document:1$score', { entity: 'document:1', attribute: 'score', kind: 'double', value: 0.5 }],
      ['attribute', 'document:1$is_private', { entity: 'document:1', attribute: 'is_private', kind: 'boolean', value: true }],
      ['attribute', 'document:1$tags', { entity: 'document:1', attribute: 'tags', kind: 'string_array', value: ['a', 'b'] }],
      ['attribute', 'document:1$levels', { entity: 'document:1', attribute: 'levels', kind: 'integer_array', value: [1, 2, 3] }],
      ['attribute', 'user:bob$flags', { entity: 'user:bob', attribute: 'flags', kind: 'boolean_array', value: [true, false] }],
      ['attribute', 'user:bob$weights', { entity: 'user:bob', attribute: 'weights', kind: 'double_array', value: [1.5, 2] }],
      ['attribute', 'user:bob$age', { entity: 'user:bob', attribute: 'age', kind: 'integer', value: 42 }],
      ['attribute', 'user:bob$nick', { entity: 'user:bob', attribute: 'nick', kind: 'string', value: 'bobby: the builder' }],
    ];
    for (const agent of [a, b, c]) {
      for (const [type, key, value] of expected) expect(await agent.facts.get(type, key)).toEqual({ type, key, value });
    }

    const dels = [
      await w.users.delete('bob@x.io'),
      await w.relationships.delete('document:1#owner@user:bob'),
      await w.attributes.delete('document:1$tags'),
      await w.roleAssignments.unassign({ user: 'alice@x.io', role: 'admin', tenant: 'acme' }),
      await w.tenants.delete('acme'),
    ];
    expect(dels.every((r) => r.synced)).toBe(true);
    for (const agent of [a, b, c]) {
      for (const [type, key] of [['user', 'bob@x.io'], ['role_assignment', 'bob@x.io/editor/acme'], ['role_assignment', 'bob@x.io/viewer/default'],
        ['relationship', 'document:1#owner@user:bob'], ['attribute', 'document:1$tags'], ['role_assignment', 'alice@x.io/admin/acme'], ['tenant', 'acme']] as const) {
        await expect(agent.facts.get(type, key), `${type} ${key}`).rejects.toMatchObject({ code: 'not_found' });
      }
    }
  });

  it('rejects malformed typed input with a 400 that says the accepted form', async () => {
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => a.relationships.write('document:1editor@user:1'), /object#relation@subject/],
      [() => a.relationships.write('document:1#editor'), /object#relation@subject/],
      [() => a.relationships.write({ object: 'd' } as never), /\{object, relation, subject\} or \{tuple/],
      [() => a.attributes.write('document:1$is_private|boolean:yes'), /not a boolean/],
      [() => a.attributes.write('document:1$is_private'), /no \|kind:value part/],
      [() => a.attributes.write('document:1$n|integer:1.5'), /not an integer/],
      [() => a.attributes.write('document:1$n|money:5'), /kind "money" is unknown/],
      [() => a.attributes.write({ entity: 'd', attribute: 'n', kind: 'integer_array', value: [1, 'x'] }), /not of kind integer_array/],
      [() => a.users.sync('u', { email: 7 } as never), /email/],
      [() => a.users.sync('u', { roles: [{ tenant: 't' }] } as never), /missing required field "role"/],
      [() => a.waitForSync({ waitFor: 'no spaces allowed' as never }).users.sync('u'), /accepted forms/],
    ];
    for (const [call, re] of cases) {
      const e = await call().then(() => undefined, (x: unknown) => x);
      expect(e, String(call)).toBeInstanceOf(FactsyncClientError);
      expect((e as FactsyncClientError).status).toBe(400);
      expect((e as FactsyncClientError).message).toMatch(re);
    }
    const t = await client(A.url).post('/v1/facts', { ops: [{ op: 'upsert', type: 'doc', key: 'k', value: {} }] }, { 'x-wait-timeout': 'soon' });
    expect(t.status).toBe(400);
    expect(t.body.message).toMatch(/X-Wait-Timeout.*not a number of seconds/);
  });

  it('bulk: 10,000 users land as one version on every agent', async () => {
    const users = Array.from({ length: 10_000 }, (_, i) => ({ key: `bulk-${i}@x.io`, email: `bulk-${i}@x.io`, first_name: `U${i}` }));
    const before = (await a.status()).head;
    const r = await a.waitForSync({ timeout: 30, waitFor: 'all' }).bulk.users(users);
    expect(r.synced).toBe(true);
    expect(r.version).toBe(before + 1);
    for (const agent of [a, b, c]) {
      expect(await agent.facts.get('user', 'bulk-9999@x.io', { atLeast: r.version })).toMatchObject({ value: { first_name: 'U9999' } });
      const page = await agent.facts.list('user', { limit: 10_000 });
      expect(page.facts.filter((f) => f.key.startsWith('bulk-')).length).toBeGreaterThanOrEqual(9_999);
      const rest = page.next_cursor ? await agent.facts.list('user', { limit: 10_000, cursor: page.next_cursor }) : { facts: [] };
      expect([...page.facts, ...rest.facts].filter((f) => f.key.startsWith('bulk-')).length).toBe(10_000);
    }
  });

  it('fails over to the next SERVER_URL when the first is down', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const E = await spawnAgent(agentEnv('E', `${dead},${servers[0]!.url}`));
    procs.push(E);
    await ready(E);
    const r = await createClient({ url: E.url }).waitForSync({ timeout: 5 }).write([{ op: 'upsert', type: 'doc', key: 'failover', value: { ok: 1 } }]);
    expect(r.synced).toBe(true);
    expect(await a.facts.get('doc', 'failover', { atLeast: r.version })).toMatchObject({ value: { ok: 1 } });
  });

  it('requires AGENT_API_TOKEN when set', async () => {
    const F = await spawnAgent({ ...agentEnv('F', servers[0]!.url), AGENT_API_TOKEN: 'local-secret' });
    procs.push(F);
    expect((await client(F.url).get('/v1/status')).status).toBe(401);
    expect((await client(F.url, 'wrong').get('/v1/status')).status).toBe(401);
    expect((await client(F.url, 'local-secret').get('/v1/status')).status).toBe(200);
    expect((await client(F.url).get('/healthz')).status).toBe(200);
    const sdk = createClient({ url: F.url, token: 'local-secret' });
    expect((await sdk.waitForSync({ timeout: 5 }).write([{ op: 'upsert', type: 'doc', key: 'authed', value: {} }])).synced).toBe(true);
  });

  it('concurrent local writes through one agent travel in batches: each its own version, all applied, fewer requests than writes', async () => {
    const batches = async () => {
      let count = 0;
      let sum = 0;
      for (const s of servers) {
        const text = (await client(s.url).get('/metrics')).body as string;
        count += Number(/^factsync_write_batch_size_count (\d+)/m.exec(text)?.[1] ?? 0);
        sum += Number(/^factsync_write_batch_size_sum (\d+)/m.exec(text)?.[1] ?? 0);
      }
      return { count, sum };
    };
    const before = await batches();
    const N = 60;
    const results = await Promise.all(Array.from({ length: N }, (_, i) =>
      a.waitForSync({ timeout: 5 }).write([{ op: 'upsert', type: 'doc', key: `batched-${i}`, value: { i } }])));
    expect(results.every((r) => r.synced)).toBe(true);
    expect(new Set(results.map((r) => r.version)).size).toBe(N);
    const after = await batches();
    expect(after.sum - before.sum).toBe(N);
    expect(after.count - before.count).toBeLessThan(N);
    // B sees every one.
    const last = Math.max(...results.map((r) => r.version));
    for (const [i, r] of results.entries()) {
      expect((await b.facts.get('doc', `batched-${i}`, { atLeast: last, timeout: 5 }))?.value).toEqual({ i });
      expect(r.version).toBeGreaterThan(0);
    }
  });

  it('a write whose answer is lost is retried with the same producer sequence number and applied once', async () => {
    const proxy = new ChaosProxy(Number(new URL(servers[0]!.url).port));
    const url = await proxy.listen();
    const G = await spawnAgent(agentEnv('G', url));
    procs.push(G);
    await ready(G);
    const before = (await client(servers[0]!.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version as number;
    proxy.loseNextPostAnswers = 1;
    const r = await createClient({ url: G.url }).waitForSync({ timeout: 5 }).write([{ op: 'upsert', type: 'doc', key: 'lost-answer', value: {} }]);
    expect(proxy.lostAnswers).toBe(1);
    expect(r).toMatchObject({ version: before + 1, synced: true });
    expect((await client(servers[0]!.url, ADMIN).get(`/v1/envs/${env}/head`)).body.version).toBe(before + 1);
    await proxy.close();
  });
});
