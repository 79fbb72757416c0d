import { afterAll, describe, expect, inject, it } from 'vitest';
import fc from 'fast-check';
import WebSocket from 'ws';
import { createServerClient } from '@factsync/sdk';
import { factsDigest, parseServerMessage, type Fact } from '@factsync/shared';
import { ADMIN, AGENT, newEnv, startAgent, startServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/**
 * One rule per wire format (invariant 10, "Data model"): whatever the server
 * accepts, every agent, subscriber and the SDK accept. A key the server counted
 * in code points and the agent in UTF-16 units once let one write stop every
 * agent of an env; these tests would catch any such pair of rules again.
 */
describe('one rule on both sides of every wire', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  /** The agent's own parser, run on a change frame holding `ops`. */
  const agentTakes = (ops: unknown[]): boolean =>
    parseServerMessage(JSON.stringify({ type: 'changes', changes: [{ version: 1, id: 'x', ts: new Date().toISOString(), ops }] })).ok;

  it('a key of 300 emoji is a 400 naming its bytes; 128 emoji (512 bytes) reach every agent; the env never stalls', async () => {
    const server = await startServer({ redisUrl: inject('redisUrl') });
    closers.push(() => server.close());
    const admin = client(server.url, ADMIN);
    const env = newEnv();
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    closers.push(() => agent.close());

    const tooLong = await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: '😀'.repeat(300), value: {} }] });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.message).toMatch(/1200 bytes of UTF-8; a key is at most 512 bytes/);
    const oneOver = await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: `${'😀'.repeat(127)}abcde`, value: {} }] });
    expect(oneOver.status).toBe(400);
    const lone = await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'a\ud800b', value: {} }] });
    expect(lone.status).toBe(400);
    expect(lone.body.message).toMatch(/lone UTF-16 surrogate/);

    const atLimit = await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: '😀'.repeat(128), value: { n: '😀'.repeat(1000) } }] });
    expect(atLimit.status).toBe(200);
    const after = await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'next', value: {} }] });
    await waitUntil(() => agent.store.version === after.body.version, 'the agent past the 512-byte key');
    expect(agent.store.get('doc', '😀'.repeat(128))?.value).toEqual({ n: '😀'.repeat(1000) });
    expect((await agent.metrics.invalidFrames.get()).values[0]?.value ?? 0).toBe(0);
  });

  it('property: every write the server accepts is applied by a real agent and followed by the SDK; every op the agent refuses, the server refused', async () => {
    const server = await startServer({ redisUrl: inject('redisUrl') });
    closers.push(() => server.close());
    const admin = client(server.url, ADMIN);
    const env = newEnv();
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    closers.push(() => agent.close());

    const lone = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
    const text = (maxLength: number) => fc.oneof(
      fc.string({ unit: 'grapheme', maxLength }),
      fc.string({ unit: 'binary', maxLength }),
      fc.string({ unit: fc.oneof(fc.constantFrom('a', 'é', '€', '😀', '\u0000', '"', '\\'), lone), maxLength }),
    );
    const key = fc.oneof(
      fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 20 }),
      text(200),
      fc.integer({ min: 120, max: 136 }).map((n) => '😀'.repeat(n)),
      fc.integer({ min: 165, max: 175 }).map((n) => '€'.repeat(n)),
      fc.integer({ min: 505, max: 520 }).map((n) => 'k'.repeat(n)),
      fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'),
    );
    const nested = fc.integer({ min: 28, max: 36 }).map((d) => {
      let v: Record<string, unknown> = { leaf: '😀' };
      for (let i = 1; i < d; i++) v = { n: v };
      return v;
    });
    const json = fc.oneof(fc.jsonValue({ maxDepth: 4 }), nested, fc.dictionary(text(10), text(30), { maxKeys: 4 }));
    const part = fc.oneof(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }), text(90), fc.integer({ min: 80, max: 180 }).map((n) => '😀'.repeat(n)));
    const op = fc.oneof(
      fc.record({ op: fc.constant('upsert'), type: fc.constantFrom('doc', 'constructor', 'prototype', 'tostring', 'x'.repeat(64), 'Bad'), key, value: fc.dictionary(text(12), json, { maxKeys: 3 }) }),
      fc.record({ op: fc.constant('upsert'), type: fc.constant('user'), key, value: fc.record({ email: text(40), first_name: text(300), attributes: fc.dictionary(text(12), json, { maxKeys: 3 }) }, { requiredKeys: [] }) }),
      fc.tuple(part, part, part).map(([user, role, tenant]) => ({ op: 'upsert', type: 'role_assignment', key: `${user}/${role}/${tenant}`, value: { user, role, tenant } })),
      fc.tuple(part, part, part).map(([o, r, s]) => ({ op: 'upsert', type: 'relationship', key: `doc:${o}#${r}@user:${s}`, value: { object: `doc:${o}`, relation: r, subject: `user:${s}` } })),
      fc.tuple(part, fc.oneof(text(20), fc.integer())).map(([e, v]) => ({ op: 'upsert', type: 'attribute', key: `doc:${e}$a`, value: { entity: `doc:${e}`, attribute: 'a', kind: typeof v === 'string' ? 'string' : 'integer', value: v } })),
      fc.record({ op: fc.constant('upsert'), type: fc.constant('resource_instance'), key: key.map((k) => `doc:${k}`), value: fc.record({ tenant: part }) }),
      fc.record({ op: fc.constant('delete'), type: fc.constantFrom('doc', 'user', 'constructor'), key }),
    );

    let accepted = 0;
    let refused = 0;
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 3 }), async (ops) => {
      const r = await admin.post(`/v1/envs/${env}/facts`, { ops });
      expect(r.status, JSON.stringify(r.body)).toBeLessThan(500);
      if (r.status === 200) accepted++;
      else {
        refused++;
        expect(r.status).toBe(400);
        expect(typeof r.body.message).toBe('string');
      }
      for (const o of ops) if (!agentTakes([o])) expect(r.status, `the agent refuses ${JSON.stringify(o).slice(0, 200)}`).toBe(400);
    }), { numRuns: 1500, seed: 20261207 });
    expect(accepted).toBeGreaterThan(200);
    expect(refused).toBeGreaterThan(200);

    const head = (await admin.get(`/v1/envs/${env}/head`)).body.version as number;
    expect(head).toBe(accepted);
    await waitUntil(() => agent.store.version === head, `the agent at ${head}`, 60_000);
    const snap = (await admin.get(`/v1/envs/${env}/snapshot`)).body as { facts: Fact[] };
    expect(agent.store.size).toBe(snap.facts.length);
    expect(factsDigest(agent.store.all())).toBe(factsDigest(snap.facts));

    // The SDK's follower parses every version the server took, in order.
    const versions: number[] = [];
    for await (const c of createServerClient({ url: server.url, token: AGENT, env }).changes({ after: 0, untilHead: true })) versions.push(c.version);
    expect(versions).toEqual(Array.from({ length: head }, (_, i) => i + 1));
  }, 240_000);
});

describe('every frame an agent sends fits what the server accepts', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('1,000 distinct 71-character users in one bulk check: usage reports cut by bytes, counted, the agent stays connected', async () => {
    const server = await startServer({ redisUrl: inject('redisUrl'), env: { WS_MAX_PAYLOAD_BYTES: '16384' } });
    closers.push(() => server.close());
    const admin = client(server.url, ADMIN);
    const env = newEnv();
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env, USAGE_REPORT_MS: '100' } });
    closers.push(() => agent.close());
    await waitUntil(() => agent.status().ready, 'the agent ready');
    const reconnects = agent.status().reconnects;
    const users = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(4, '0')}-${'u'.repeat(66)}`);
    const bulk = await client(agent.url).post('/allowed/bulk', users.map((u) => ({ user: u, action: 'read', resource: 'doc' })));
    expect(bulk.status).toBe(200);
    await waitUntil(async () => (await admin.get(`/v1/envs/${env}/usage`)).body.mau === 1000, 'all 1,000 users counted', 20_000);
    expect(agent.status().reconnects).toBe(reconnects);
    expect(agent.usage.waiting).toBe(0);
  });

  it('a usage report the server refuses is dropped with a usage_refused, never re-sent, and the session goes on', async () => {
    const server = await startServer({ redisUrl: inject('redisUrl') });
    closers.push(() => server.close());
    const env = newEnv();
    await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'd', value: {} }] });
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${AGENT}` } });
    closers.push(async () => ws.terminate());
    const frames: { type: string; seq?: number; message?: string }[] = [];
    ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString())));
    let closed = false;
    ws.on('close', () => (closed = true));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'hello', env, agent_id: 'usage-prober', applied: 0, ack: true }));
    await waitUntil(() => frames.some((f) => f.type === 'snapshot'), 'the snapshot');
    ws.send(JSON.stringify({ type: 'usage', seq: 1, month: '1970-01', users: ['u'] }));
    ws.send(JSON.stringify({ type: 'usage', seq: 2, month: new Date().toISOString().slice(0, 7), users: ['k'.repeat(600)] }));
    ws.send(JSON.stringify({ type: 'usage', seq: 3, month: new Date().toISOString().slice(0, 7), users: ['fine'] }));
    await waitUntil(() => frames.some((f) => f.type === 'usage_ok' && f.seq === 3), 'usage_ok for the good batch');
    const refusals = frames.filter((f) => f.type === 'usage_refused');
    expect(refusals.map((f) => f.seq)).toEqual([1, 2]);
    expect(refusals[0]!.message).toMatch(/outside the months/);
    expect(refusals[1]!.message).toMatch(/users\/0/);
    expect(closed).toBe(false);
    expect((await client(server.url, ADMIN).get(`/v1/envs/${env}/usage?month=1970-01`)).body.mau).toBe(0);
  });
});

describe('acks only for what was received (invariant 7)', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('a hello claiming applied 5 without applied_id is answered as a first start and does not satisfy X-Wait-For', async () => {
    const server = await startServer({ redisUrl: inject('redisUrl') });
    closers.push(() => server.close());
    const admin = client(server.url, ADMIN);
    const env = newEnv();
    const a2 = await startAgent(server.url, { env: { AGENT_ENV: env, AGENT_ID: 'a2' } });
    for (let i = 0; i < 5; i++) await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: `d${i}`, value: {} }] });
    await waitUntil(() => a2.store.version === 5, 'a2 at 5');
    await a2.close();

    const pending = admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'd5', value: {} }] }, { 'x-wait-for': 'a2', 'x-wait-timeout': '3' });
    await waitUntil(async () => (await admin.get(`/v1/envs/${env}/head`)).body.version === 6, 'the waited write');
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${AGENT}` } });
    closers.push(async () => ws.terminate());
    const frames: { type: string; snapshot?: boolean; version?: number }[] = [];
    ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString())));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'hello', env, agent_id: 'a2', applied: 6, applied_id: null, ack: true }));
    await waitUntil(() => frames.some((f) => f.type === 'snapshot'), 'a snapshot: the hello proved nothing');
    expect(frames[0]).toMatchObject({ type: 'welcome', snapshot: true });
    // An ack of what was never sent on this session ends it; an ack of the snapshot it got would count.
    const answer = await pending;
    expect(answer.status).toBe(200);
    expect(answer.body.sync.synced).toBe(false);
    const agents = (await admin.get(`/v1/envs/${env}/agents`)).body as { id: string; applied: number }[];
    expect(agents.find((a) => a.id === 'a2')?.applied ?? 0).toBeLessThan(6);
  });
});
