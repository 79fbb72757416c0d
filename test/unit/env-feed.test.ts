import { describe, expect, it } from 'vitest';
import { waitUntil } from '../src/wait.js';
import { pino } from 'pino';
import { Broadcaster, createMemoryStore, type FactStore } from '@factsync/server';
import { EnvFeed, type ChangeBatch } from '../../server/src/broadcast/env-feed.js';

const log = pino({ level: 'silent' });
const op = { op: 'upsert' as const, type: 'doc', key: 'k', value: {} };

function member() {
  const got: number[] = [];
  const resyncs: string[] = [];
  return {
    got, resyncs,
    deliver: (b: ChangeBatch) => got.push(...b.changes.map((c) => c.version)),
    resync: (r: string) => resyncs.push(r),
  };
}

describe('EnvFeed', () => {
  it('a doorbell that overtakes an in-flight head read is not mistaken for data loss', async () => {
    const store = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 10_000 });
    const first = await store.write('e', { ops: [op], ts: 't' });
    const m = member();
    // The head answer (version 1) is delayed until after the doorbell of version 2 was handled.
    let release!: () => void;
    const slow: FactStore = { ...store, head: async (env) => { const h = await store.head(env); await new Promise<void>((r) => (release = r)); return { ...h, version: 1 }; } };
    const racing = new EnvFeed('e', { version: 1, epoch: first.epoch, id: '' }, new Set([m]), slow, 100, log);
    const healing = racing.heal();
    const w = await store.write('e', { ops: [op], ts: 't' });
    racing.onEvent({ version: w.version, epoch: w.epoch, change: `{"version":2,"ts":"t","ops":[]}` });
    release();
    await healing;
    expect(m.resyncs).toEqual([]);
    expect(racing.known).toBe(2);
    racing.close();
  });

  it('a doorbell of another epoch resets members instead of being delivered', async () => {
    const store = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 10_000 });
    const w = await store.write('e', { ops: [op], ts: 't' });
    const m = member();
    const feed = new EnvFeed('e', { version: 1, epoch: 'old-epoch', id: '' }, new Set([m]), store, 100, log);
    feed.onEvent({ version: 2, epoch: w.epoch, change: '{"version":2,"ts":"t","ops":[]}' });
    await new Promise((r) => setTimeout(r, 20));
    expect(m.got).toEqual([]);
    expect(m.resyncs).toEqual(['store_reset']);
  });

  it('fills a jump from the log and delivers versions in order', async () => {
    const store = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 10_000 });
    const m = member();
    const feed = new EnvFeed('e', { version: 0, epoch: null, id: '' }, new Set([m]), store, 2, log);
    let last = { version: 0, epoch: '' };
    for (let i = 0; i < 5; i++) last = await store.write('e', { ops: [op], ts: 't' });
    feed.onEvent({ version: last.version, epoch: last.epoch }); // only the last doorbell rang, without payload
    await new Promise((r) => setTimeout(r, 20));
    expect(m.got).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('EnvFeed and the chain (invariant 9)', () => {
  it('a doorbell that does not follow the chain of what it handed out makes every member resync', async () => {
    const store = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 10_000 });
    const first = await store.write('e', { ops: [op], ts: 't' });
    const m = member();
    const feed = new EnvFeed('e', await store.head('e'), new Set([m]), store, 100, log);
    // Version 2 of another history: its id chains from something other than version 1's id.
    const other = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 10_000 });
    await other.write('e', { ops: [{ ...op, key: 'elsewhere' }], ts: 't' });
    await other.write('e', { ops: [op], ts: 't' });
    const page = await other.changes('e', 1, 1);
    if (page.truncated) throw new Error('unexpected');
    feed.onEvent({ version: 2, epoch: first.epoch, change: page.changes[0]!.json });
    expect(m.got).toEqual([]);
    expect(m.resyncs).toEqual(['store_reset']);
    feed.close();
  });

  it('heal notices a head with the same version and another id (a rewound store)', async () => {
    const store = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 10_000 });
    await store.write('e', { ops: [op], ts: 't' });
    const head = await store.head('e');
    const m = member();
    const feed = new EnvFeed('e', { ...head, id: 'f'.repeat(40) }, new Set([m]), store, 100, log);
    await feed.heal();
    expect(m.resyncs).toEqual(['store_reset']);
    const m2 = member();
    const healthy = new EnvFeed('e', head, new Set([m2]), store, 100, log);
    await healthy.heal();
    expect(m2.resyncs).toEqual([]);
    feed.close();
    healthy.close();
  });

  it('a group doorbell delivers its inline changes in order; one that does not follow the chain is a fork', async () => {
    const store = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 10_000 });
    const events: import('@factsync/server').EnvEvent[] = [];
    await store.subscribe('g', (e) => events.push(e));
    const results = await store.writeMany('g', [{ ops: [op], ts: 't' }, { ops: [op], ts: 't' }, { ops: [op], ts: 't' }]);
    await new Promise((r) => setTimeout(r, 5));
    expect(events).toHaveLength(1);
    const m = member();
    const feed = new EnvFeed('g', { version: 0, epoch: results[0]!.ok ? results[0]!.outcome.epoch : null, id: '' }, new Set([m]), store, 100, log);
    feed.onEvent(events[0]!);
    await new Promise((r) => setTimeout(r, 20));
    expect(m.got).toEqual([1, 2, 3]);
    expect(feed.known).toBe(3);
    feed.close();

    // The same group seen by a feed whose history differs at version 1: not delivered, a fork.
    let forks = 0;
    const other = member();
    const forked = new EnvFeed('g', { version: 0, epoch: results[0]!.ok ? results[0]!.outcome.epoch : null, id: '' }, new Set([other]), store, 100, log, undefined, () => forks++);
    const ev = events[0]!;
    forked.onEvent({ ...ev, changes: [ev.changes![0]!.replace(/"id":"[0-9a-f]+"/, '"id":"' + '0'.repeat(40) + '"'), ...ev.changes!.slice(1)] });
    await new Promise((r) => setTimeout(r, 20));
    expect(forks).toBe(1);
    forked.close();
  });
});

describe('Broadcaster heal', () => {
  it('heals active feeds every tick and idle ones rarely, so its cost follows the active envs', async () => {
    const store = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 10_000 });
    const heads = new Map<string, number>();
    const counting: FactStore = { ...store, head: async (env) => (heads.set(env, (heads.get(env) ?? 0) + 1), store.head(env)) };
    const b = new Broadcaster(counting, log, { healIntervalMs: 10, pageSize: 100, idleAfterMs: 50, idleHealMs: 100_000 });
    const m = member();
    for (let i = 0; i < 20; i++) await b.join(`idle${i}`, m);
    await b.join('busy', m);
    // 'busy' keeps getting doorbells; the others get none.
    const until = Date.now() + 600;
    while (Date.now() < until) {
      await store.write('busy', { ops: [op], ts: 't' });
      await new Promise((r) => setTimeout(r, 20));
    }
    const idleHeads = [...heads].filter(([env]) => env.startsWith('idle')).map(([, n]) => n);
    // Each idle feed: its join, and heals only during its first idleAfterMs (a few ticks), then none for 100 s.
    expect(Math.max(...idleHeads)).toBeLessThan(15);
    expect(heads.get('busy')!).toBeGreaterThan(Math.max(...idleHeads) * 2);
    await b.close();
  });

  it('an idle feed whose doorbell was lost still gets the version, at the idle heal (invariant 6)', async () => {
    const store = createMemoryStore({ logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 10_000 });
    const dropped: number[] = [];
    const b = new Broadcaster(store, log, { healIntervalMs: 10, pageSize: 100, idleAfterMs: 30, idleHealMs: 200 }, {
      dropEvent: (_env, ev) => (dropped.push(ev.version), true),
    });
    const m = member();
    await b.join('quiet', m);
    await new Promise((r) => setTimeout(r, 100)); // idle now
    await store.write('quiet', { ops: [op], ts: 't' });
    await waitUntil(() => m.got.includes(1), 'the version whose doorbell was lost', 10_000);
    expect(dropped).toEqual([1]);
    await b.close();
  });
});
