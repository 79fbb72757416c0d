import { afterAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { createMemoryStore, createRedisStore, type FactStore } from '@factsync/server';
import { ADMIN, AGENT, newEnv, startAgent, startServer, testLogger } from '../src/inproc.js';
import { SnapshotAssembly, factsDigest, replayBreak, type AssembledSnapshot, type SnapshotMessage } from '@factsync/shared';
import { Applier, LocalStore } from '@factsync/pdp-agent';
import { client } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/**
 * Frames and pages are bounded in bytes (invariant 10, WS_MAX_FRAME_BYTES):
 * a history of large changes reaches a lagging agent as frames within the
 * budget (one oversized change alone), instead of one page of a thousand
 * changes built as one string (which used to end every reconnect in 1011 and
 * left the agent stuck for ever).
 */
describe('byte-bounded frames', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  const BUDGET = 64 * 1024;
  const bigWrite = (i: number, kb: number) => ({
    ops: Array.from({ length: kb }, (_, j) => ({ op: 'upsert', type: 'blob', key: `b${i}-${j}`, value: { pad: 'x'.repeat(1000) } })),
  });

  it('catch-up after many large versions: every frame within the budget unless it holds one change, and the agent catches up', async () => {
    const server = await startServer({ redisUrl: inject('redisUrl'), env: { WS_MAX_FRAME_BYTES: String(BUDGET), CHANGES_PAGE_SIZE: '1000' } });
    closers.push(() => server.close());
    const admin = client(server.url, ADMIN);
    const env = newEnv();
    // 20 versions: most ~30 KB (two fit a frame), some ~150 KB (over the budget: each travels alone).
    const sizes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const kb = i % 5 === 0 ? 150 : 30;
      sizes.push(kb);
      expect((await admin.post(`/v1/envs/${env}/facts`, bigWrite(i, kb))).status).toBe(200);
    }

    // A raw subscriber that was at version 1 reconnects: it must get 2..20 in order, in bounded frames.
    const first = await admin.get(`/v1/envs/${env}/head`);
    const frames: Buffer[] = [];
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${AGENT}` } });
    closers.push(async () => ws.close());
    ws.on('message', (d: Buffer) => frames.push(d));
    await new Promise((r) => ws.once('open', r));
    const v1 = (await admin.get(`/v1/envs/${env}/changes?after=0&limit=1`)).body.changes[0].id as string;
    ws.send(JSON.stringify({ type: 'hello', env, agent_id: 'lagging', applied: 1, epoch: first.body.epoch, applied_id: v1, ack: false }));
    const versions = () => frames.map((f) => JSON.parse(f.toString()) as { type: string; changes?: { version: number }[] })
      .filter((m) => m.type === 'changes').flatMap((m) => m.changes!.map((c) => c.version));
    await waitUntil(() => versions().at(-1) === 20, 'versions up to 20');
    expect(versions()).toEqual(Array.from({ length: 19 }, (_, i) => i + 2));
    const changeFrames = frames.map((f) => ({ bytes: f.length, m: JSON.parse(f.toString()) as { type: string; changes?: unknown[] } })).filter((x) => x.m.type === 'changes');
    for (const f of changeFrames) {
      if (f.m.changes!.length > 1) expect(f.bytes).toBeLessThanOrEqual(BUDGET + 1024);
    }
    expect(changeFrames.some((f) => f.m.changes!.length > 1)).toBe(true); // small ones still share frames
    expect(changeFrames.some((f) => f.bytes > BUDGET && f.m.changes!.length === 1)).toBe(true); // big ones go alone

    // A real agent from scratch gets the same state; live large writes reach it too.
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    closers.push(() => agent.close());
    await waitUntil(() => agent.store.version === 20, 'the agent at 20');
    await Promise.all(Array.from({ length: 4 }, (_, k) => admin.post(`/v1/envs/${env}/facts`, bigWrite(20 + k, 100))));
    await waitUntil(() => agent.store.version === 24, 'the agent at 24');
    const snap = await admin.get(`/v1/envs/${env}/snapshot`);
    expect(agent.store.size).toBe(snap.body.facts.length);
  });

  it('HTTP /changes pages stop at the byte budget too (16 × WS_MAX_FRAME_BYTES), at least one change', async () => {
    const server = await startServer({ env: { WS_MAX_FRAME_BYTES: String(BUDGET) } });
    closers.push(() => server.close());
    const admin = client(server.url, ADMIN);
    const env = newEnv();
    for (let i = 0; i < 12; i++) await admin.post(`/v1/envs/${env}/facts`, bigWrite(i, 150));
    const page = await admin.get(`/v1/envs/${env}/changes?after=0&limit=1000`);
    expect(page.status).toBe(200);
    expect(page.body.changes.length).toBeGreaterThanOrEqual(1);
    expect(page.body.changes.length).toBeLessThan(12);
    expect(page.body.head).toBe(12);
  });
});

describe('chunked, shared snapshots', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('a snapshot larger than a frame travels in frames within the budget; concurrent ones share one read; agents apply only whole snapshots', async () => {
    const BUDGET = 32 * 1024;
    const store = createMemoryStore({ logRetention: 1000, idempotencyTtlSeconds: 60, inlineChangeBytes: 4096 });
    let reads = 0;
    // A scan that starts (cursor "0") is one read of the env; it starts late, so those asking together join it.
    const counting: FactStore = {
      ...store,
      scanState: async (env, cursor, count) => {
        if (cursor === '0') reads++;
        await new Promise((r) => setTimeout(r, cursor === '0' ? 100 : 1));
        return store.scanState(env, cursor, count);
      },
    };
    const server = await startServer({ store: counting, env: { WS_MAX_FRAME_BYTES: String(BUDGET), MAX_SNAPSHOT_STREAMS: '2' } });
    closers.push(() => server.close());
    const env = newEnv();
    const admin = client(server.url, ADMIN);
    for (let i = 0; i < 4; i++) {
      await admin.post(`/v1/envs/${env}/facts`, { ops: Array.from({ length: 500 }, (_, j) => ({ op: 'upsert', type: 'doc', key: `k${i}-${j}`, value: { pad: 'y'.repeat(100) } })) });
    }
    // Six subscribers from scratch at once: one read of the env, streamed two at a time.
    const subs = await Promise.all(Array.from({ length: 6 }, (_, i) => new Promise<{ frames: Buffer[]; ws: WebSocket }>((resolve) => {
      const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${AGENT}` } });
      const frames: Buffer[] = [];
      ws.on('message', (d: Buffer) => frames.push(d));
      ws.once('open', () => {
        ws.send(JSON.stringify({ type: 'hello', env, agent_id: `snap-${i}`, applied: 0, ack: false }));
        resolve({ frames, ws });
      });
    })));
    closers.push(async () => subs.forEach((s) => s.ws.close()));
    const snapshotFrames = (f: Buffer[]) => f.map((b) => ({ bytes: b.length, m: JSON.parse(b.toString()) as { type: string; version?: number; last?: boolean; facts?: unknown[] } })).filter((x) => x.m.type === 'snapshot');
    await waitUntil(() => subs.every((s) => snapshotFrames(s.frames).some((x) => x.m.last === true)), 'every subscriber to get a whole snapshot');
    expect(reads).toBeLessThanOrEqual(2); // shared: one read for those asking together (a slow start may split them in two)
    for (const s of subs) {
      const frames = snapshotFrames(s.frames);
      expect(frames.length).toBeGreaterThan(5);
      expect(frames.every((f) => f.bytes <= BUDGET)).toBe(true);
      expect(frames.every((f) => f.m.version === 4)).toBe(true);
      expect(frames.slice(0, -1).every((f) => f.m.last === false)).toBe(true);
      expect(frames.reduce((n, f) => n + f.m.facts!.length, 0)).toBe(2000);
    }

    // A real agent assembles the frames and applies the snapshot once, whole.
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    closers.push(() => agent.close());
    await waitUntil(() => agent.status().ready, 'agent ready');
    expect(agent.store.size).toBe(2000);
    expect(agent.status()).toMatchObject({ applied: 4, snapshots_applied: 1 });
  });

  it('a snapshot streamed while writes go on: the changes written during the scan ride with it, and the agent lands exactly on the state at their end', async () => {
    const redis = await createRedisStore({
      url: inject('redisUrl'), keyPrefix: `t${newEnv()}`, logRetention: 100_000, idempotencyTtlSeconds: 60, inlineChangeBytes: 4096, commandTimeoutMs: 5000, log: testLogger(),
    });
    // Scans pause from the third step on (whichever round takes it) until the writes below are done.
    let scanned = 0;
    let open!: () => void;
    let onReached!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const reached = new Promise<void>((r) => (onReached = r));
    const gated: FactStore = {
      ...redis,
      scanState: async (env, cursor, count) => {
        if (++scanned >= 3) {
          onReached();
          await gate;
        }
        return redis.scanState(env, cursor, count);
      },
    };
    const server = await startServer({ store: gated, env: { WS_MAX_FRAME_BYTES: String(16 * 1024) } });
    closers.push(() => server.close());
    const admin = client(server.url, ADMIN);
    const env = newEnv();
    for (let i = 0; i < 6; i++) {
      await admin.post(`/v1/envs/${env}/facts`, { ops: Array.from({ length: 500 }, (_, j) => ({ op: 'upsert', type: 'doc', key: `k${i * 500 + j}`, value: { v: 0, pad: 'p'.repeat(60) } })) });
    }
    const base = (await admin.get(`/v1/envs/${env}/head`)).body.version as number;

    // A raw subscriber and a real agent ask at once: one round, paused mid-scan.
    const frames: string[] = [];
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${AGENT}` } });
    closers.push(async () => ws.close());
    ws.on('message', (d: Buffer) => frames.push(d.toString()));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'hello', env, agent_id: 'watcher', applied: 0, ack: false }));
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env, AGENT_ID: 'replayer' } });
    closers.push(() => agent.close());
    await reached;
    const streaming = (await client(server.url).get('/metrics')).body as string;
    expect(streaming).toMatch(/factsync_snapshot_streams\{state="running"\} [12]\b/);
    // Updates, deletes (of keys on both sides of the scan) and new keys while the scan waits.
    for (let i = 0; i < 30; i++) {
      const k = (i * 211) % 3000;
      await admin.post(`/v1/envs/${env}/facts`, { ops: [
        { op: 'upsert', type: 'doc', key: `k${k}`, value: { v: i + 1 } },
        { op: 'delete', type: 'doc', key: `k${(k + 1500) % 3000}` },
        { op: 'upsert', type: 'doc', key: `new${i}`, value: { v: i + 1 } },
      ] });
    }
    const head = (await admin.get(`/v1/envs/${env}/head`)).body.version as number;
    expect(head).toBe(base + 30);
    open();

    // The subscriber's frames: facts of base, then the 30 changes, one snapshot at `head`.
    const assembly = new SnapshotAssembly();
    let whole: AssembledSnapshot | undefined;
    await waitUntil(() => {
      while (frames.length > 0 && !whole) {
        const m = JSON.parse(frames.shift()!) as SnapshotMessage;
        if (m.type === 'snapshot') whole = assembly.add(m);
      }
      return whole;
    }, 'the whole snapshot');
    expect(whole!.version).toBe(base);
    expect(whole!.replay.map((c) => c.version)).toEqual(Array.from({ length: 30 }, (_, i) => base + i + 1));
    expect(replayBreak(whole!)).toBeNull();
    const local = new LocalStore();
    new Applier(local).snapshot(whole!.version, whole!.epoch, whole!.facts, whole!.id, whole!.replay);
    const snap = await admin.get(`/v1/envs/${env}/snapshot`);
    expect(snap.body.version).toBe(head);
    expect(local.version).toBe(head);
    expect(local.digest()).toBe(factsDigest(snap.body.facts));
    expect(whole!.count).toBe(snap.body.facts.length); // the count the agent checks its assembled state against

    // The real agent: one snapshot, applied at `head`, equal to the server's.
    await waitUntil(() => agent.status().ready, 'agent ready');
    expect(agent.status()).toMatchObject({ applied: head, snapshots_applied: 1 });
    expect(agent.store.digest()).toBe(factsDigest(snap.body.facts));
    // Its ack of `head` counts (invariants 8 and 9): the server recorded it with the chain id of the
    // last replayed change, not the scan's base.
    const sync = await admin.get(`/v1/envs/${env}/sync?version=${head}&wait_for=replayer&timeout=5`);
    expect(sync.body).toMatchObject({ version: head, synced: true, acked: ['replayer'] });
  });

  it('a scan that misses a fact is caught by the count on the last frame: the agent clears it and loads a whole snapshot again', async () => {
    const store = createMemoryStore({ logRetention: 1000, idempotencyTtlSeconds: 60, inlineChangeBytes: 4096 });
    let dropped = 0;
    // The first scan loses one fact, as a scan under a Redis Cluster resharding could.
    const lossy: FactStore = {
      ...store,
      scanState: async (env, cursor, count) => {
        const step = await store.scanState(env, cursor, count);
        if (dropped === 0 && step.facts.length > 0) {
          dropped++;
          return { ...step, facts: step.facts.slice(1) };
        }
        return step;
      },
    };
    const server = await startServer({ store: lossy, env: { WS_MAX_FRAME_BYTES: String(16 * 1024) } });
    closers.push(() => server.close());
    const admin = client(server.url, ADMIN);
    const env = newEnv();
    await admin.post(`/v1/envs/${env}/facts`, { ops: Array.from({ length: 300 }, (_, j) => ({ op: 'upsert', type: 'doc', key: `k${j}`, value: { j } })) });
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    closers.push(() => agent.close());
    await waitUntil(() => agent.status().ready && agent.store.size === 300, 'agent ready with every fact');
    expect(dropped).toBe(1);
    const snap = await admin.get(`/v1/envs/${env}/snapshot`);
    expect(agent.store.digest()).toBe(factsDigest(snap.body.facts));
    expect(agent.status()).toMatchObject({ applied: 1, snapshots_applied: 1 }); // the incomplete one was never applied
    const metrics = (await client(agent.url).get('/metrics')).body as string;
    expect(metrics).toMatch(/factsync_agent_history_forks_total 1/);
  });
});
