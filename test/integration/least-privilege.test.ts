import { afterAll, describe, expect, inject, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { createMemoryStore } from '@factsync/server';
import { ADMIN, AGENT, READER, WRITER, newEnv, startServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { RawAgent } from '../src/raw-agent.js';
import { waitUntil } from '../src/wait.js';

/** Invariant 10, least privilege: readers and subscribers of a missing env get an empty stream, never a new env. */
describe.each([['memory', false], ['redis', true]] as const)('readers cannot create envs (%s store)', (_kind, redis) => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('a subscriber hello and HTTP reads of a missing env create nothing; the env appears with its first write, and the subscriber gets it', async () => {
    const server = await startServer(redis ? { redisUrl: inject('redisUrl') } : {});
    closers.push(() => server.close());
    const reader = client(server.url, READER);
    const env = newEnv();

    const sub = await RawAgent.connect(server.url, READER, { type: 'hello', env, agent_id: 'watcher', applied: 0, ack: false });
    closers.push(async () => sub.close());
    await new Promise((r) => setTimeout(r, 100));
    expect(sub.messages[0]).toMatchObject({ type: 'welcome', head: 0, epoch: null });
    expect((await reader.get(`/v1/envs/${env}/head`)).body.version).toBe(0);
    expect((await reader.get(`/v1/envs/${env}/snapshot`)).body.facts).toEqual([]);
    expect((await reader.get(`/v1/envs/${env}/changes?after=0`)).status).toBe(200);
    expect((await reader.get(`/v1/envs/${env}/usage`)).body.mau).toBe(0);
    expect((await client(server.url, ADMIN).get('/v1/envs')).body.envs).not.toContain(env);

    const w = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'd', value: {} }] });
    expect(w.status).toBe(200);
    await sub.waitReceived(1);
    expect(sub.closed).toBeUndefined();
    expect((await client(server.url, ADMIN).get('/v1/envs')).body.envs).toContain(env);
  });
});

describe('status streams are bounded', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('a client that never reads is cut at STREAM_MAX_BUFFERED_BYTES; streams per token are limited', async () => {
    const store = createMemoryStore({ logRetention: 1000, idempotencyTtlSeconds: 60, inlineChangeBytes: 4096 });
    const env = newEnv();
    // Large status events: thousands of agent records make each one about a megabyte.
    for (let i = 0; i < 8000; i++) {
      await store.openSession(env, { id: `agent-${i}-${'x'.repeat(40)}`, session: `s${i}`, replica: 'r', leaseMs: 600_000, addr: '10.0.0.1:1', resume: { applied: 0, epoch: null, appliedId: null } });
    }
    const server = await startServer({ store, env: { STREAM_MAX_BUFFERED_BYTES: String(64 * 1024), MAX_STREAMS_PER_TOKEN: '3' } });
    closers.push(() => server.close());
    const { port } = new URL(server.url);

    // Three clients that never read.
    const stalled = await Promise.all(Array.from({ length: 3 }, () => new Promise<Socket>((resolve) => {
      const s = connect(Number(port), '127.0.0.1', () => {
        s.write(`GET /v1/envs/${env}/status/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`);
        s.pause();
        resolve(s);
      });
      s.on('error', () => undefined);
    })));
    closers.push(async () => stalled.forEach((s) => s.destroy()));
    // A fourth stream of the same token is refused while they are open.
    await new Promise((r) => setTimeout(r, 200));
    expect((await client(server.url, ADMIN).get(`/v1/envs/${env}/status/stream`)).status).toBe(429);

    // Writes make status events; the server cuts the stalled clients instead of queuing for ever,
    // which frees their slots: three new streams of the token open again.
    const admin = client(server.url, ADMIN);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: `d${i}`, value: {} }] });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const openThree = async () => {
      const rs = await Promise.all(Array.from({ length: 3 }, () => fetch(`${server.url}/v1/envs/${env}/status/stream`, { headers: { authorization: `Bearer ${ADMIN}` } })));
      await Promise.all(rs.map((r) => r.body?.cancel()));
      await new Promise((r) => setTimeout(r, 50));
      return rs.every((r) => r.status === 200);
    };
    await waitUntil(openThree, 'the stalled streams to be cut', 60_000);
    writing = false;
    await writer;
  });
});

describe('long-polls are bounded per token', () => {
  it('past MAX_WAITS_PER_TOKEN, a waiting /sync or write is a 429 (nothing written); answers at once (timeout 0) are not counted', async () => {
    const server = await startServer({ env: { MAX_WAITS_PER_TOKEN: '2' } });
    try {
      const admin = client(server.url, ADMIN);
      const env = newEnv();
      // An agent that never acks keeps waits for "all" pending.
      const silent = await RawAgent.connect(server.url, AGENT, { type: 'hello', env, agent_id: 'silent', applied: 0, ack: true });
      await new Promise((r) => setTimeout(r, 100));
      const w = await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'd', value: {} }] });
      const held = [1, 2].map(() => admin.get(`/v1/envs/${env}/sync?version=${w.body.version}&timeout=30`));
      await new Promise((r) => setTimeout(r, 200));
      const over = await admin.get(`/v1/envs/${env}/sync?version=${w.body.version}&timeout=30`);
      expect(over.status).toBe(429);
      expect(over.body.error).toBe('too_many_connections');
      const head = (await admin.get(`/v1/envs/${env}/head`)).body.version;
      const refused = await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'e', value: {} }] }, { 'x-wait-timeout': '5' });
      expect(refused.status).toBe(429);
      expect((await admin.get(`/v1/envs/${env}/head`)).body.version).toBe(head); // nothing written
      expect((await admin.get(`/v1/envs/${env}/sync?version=${w.body.version}&timeout=0`)).status).toBe(200);
      // Another token has its own slots.
      expect((await client(server.url, WRITER).post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'f', value: {} }] }, { 'x-wait-timeout': '0.2' })).status).toBe(200);
      // Once the waits end, the slots are free again.
      silent.ack(w.body.version);
      await Promise.all(held);
      expect((await admin.get(`/v1/envs/${env}/sync?version=${w.body.version}&timeout=1`)).status).toBe(200);
      silent.close();
    } finally {
      await server.close();
    }
  });
});
