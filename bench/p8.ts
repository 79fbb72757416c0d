import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { pino } from 'pino';
import { createEmbeddedStore, createMemoryStore, createRedisStore, DATA_FILE, type FactStore } from '@factsync/server';
import type { Op } from '@factsync/shared';
import { spawnServer } from '../test/src/procs.js';
import { AGENT, Harness, TOKENS } from './lib/harness.js';
import { Progress, peakKiB } from './lib/stats.js';

/**
 * P8: the durable embedded store (SQLite, WAL, synchronous=FULL) against the
 * memory store (same rules, nothing on disk) and Redis (no persistence, as
 * on this machine) in the same run: write latency of single-op and 100-op
 * writes one at a time, writes/s with 16 concurrent writers (group commit);
 * then a 1M-fact embedded store: how long a server takes to start on it (and
 * its peak memory), and an agent's cold start from it.
 */
const QUICK = process.env.BENCH_QUICK === '1';
const n = (full: number, quick: number) => (QUICK ? quick : full);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const opts = { logRetention: 100_000, idempotencyTtlSeconds: 3600, inlineChangeBytes: 64 * 1024 };
const op = (i: number, pad = 40): Op => ({ op: 'upsert', type: 'user', key: `u${i}`, value: { email: `u${i}@example.com`, attributes: { pad: 'x'.repeat(pad) } } });

async function measure(store: FactStore, env: string) {
  const time = async (count: number, opsPer: number) => {
    const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60e9, numberOfSignificantValueDigits: 3 });
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      const ops = Array.from({ length: opsPer }, (_, k) => op(i * opsPer + k));
      const t = process.hrtime.bigint();
      await store.write(env, { ops, ts: new Date().toISOString() });
      h.recordValue(Number(process.hrtime.bigint() - t));
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    return { p50_us: round(h.getValueAtPercentile(50) / 1000), p99_us: round(h.getValueAtPercentile(99) / 1000), writes_per_s: Math.round(count / secs) };
  };
  const single = await time(n(3000, 300), 1);
  const hundred = await time(n(500, 50), 100);
  // 16 writers at once: the store's group commit takes what queued behind a group in flight.
  const total = n(6000, 600);
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < total) {
      const i = next++;
      await store.writeMany(env, [{ ops: [op(1e6 + i)], ts: new Date().toISOString() }]);
    }
  }));
  const concurrent16 = { writes_per_s: Math.round(total / (Number(process.hrtime.bigint() - t0) / 1e9)) };
  return { single, hundred, concurrent16 };
}

export async function p8(): Promise<Record<string, unknown>> {
  const prog = new Progress('P8');
  const h = new Harness();
  const dirs: string[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'factsync-p8-'));
    dirs.push(d);
    return d;
  };
  try {
    await h.startRedis();
    const stores: Record<string, () => Promise<FactStore>> = {
      memory: async () => createMemoryStore(opts),
      embedded: async () => createEmbeddedStore({ ...opts, dataDir: dir() }).store,
      // What synchronous=FULL costs: NORMAL survives kill -9 too, not a power cut.
      embedded_normal: async () => createEmbeddedStore({ ...opts, dataDir: dir(), synchronous: 'NORMAL' }).store,
      redis: () => createRedisStore({ ...opts, url: h.redis.url, keyPrefix: `p8${Date.now()}`, commandTimeoutMs: 5000, log: pino({ level: 'silent' }) }),
    };
    const writes: Record<string, unknown> = {};
    for (const [kind, make] of Object.entries(stores)) {
      prog.update(`writes on the ${kind} store`, true);
      const s = await make();
      writes[kind] = await measure(s, 'w');
      await s.close();
      prog.done(`${kind}: ${JSON.stringify(writes[kind])}`);
    }

    // A 1M-fact embedded store, written in process.
    const facts = n(1_000_000, 100_000);
    const big = dir();
    const s = createEmbeddedStore({ ...opts, dataDir: big }).store;
    const t0 = performance.now();
    for (let i = 0; i < facts; i += 5000) {
      await s.write('big', { ops: Array.from({ length: Math.min(5000, facts - i) }, (_, k) => op(i + k, 60)), ts: new Date().toISOString() });
      if (i % 100_000 === 0) prog.update(`writing the big store: ${i}/${facts}`);
    }
    const writeSecs = (performance.now() - t0) / 1000;
    await s.close();
    const fileMiB = round(statSync(join(big, DATA_FILE)).size / 2 ** 20, 1);
    prog.done(`${facts} facts written in ${round(writeSecs, 1)} s; file ${fileMiB} MiB`);

    // Loading it in process, then a server process starting on it, then an agent's cold start from that server.
    const l0 = performance.now();
    const loaded = createEmbeddedStore({ ...opts, dataDir: big });
    const loadMs = Math.round(performance.now() - l0);
    await loaded.store.close();
    prog.done(`loaded in process: ${loadMs} ms (${loaded.facts} facts)`);
    const r0 = performance.now();
    const server = await spawnServer({ DATA_DIR: big, AUTH_TOKENS: TOKENS, LOG_LEVEL: 'info' });
    const restartMs = Math.round(performance.now() - r0);
    const serverAfterLoadMiB = round(peakKiB(server.child.pid!) / 1024, 1);
    prog.done(`server process up on the store in ${restartMs} ms, peak ${serverAfterLoadMiB} MiB`);
    try {
      const a0 = performance.now();
      const agent = await h.agentProcess({ SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: 'big', AGENT_ID: 'p8' });
      for (let i = 0; i < 6000 && (await fetch(`${agent.url}/readyz`).then((r) => r.status, () => 0)) !== 200; i++) await new Promise((r) => setTimeout(r, 50));
      const agentColdStartMs = Math.round(performance.now() - a0);
      const serverPeakMiB = round(peakKiB(server.child.pid!) / 1024, 1);
      prog.done(`agent cold start from it: ${agentColdStartMs} ms; server peak ${serverPeakMiB} MiB`);
      const ratio = (a: string, b: string, f: 'single' | 'hundred') =>
        round((writes[a] as Record<string, { writes_per_s: number }>)[f]!.writes_per_s / (writes[b] as Record<string, { writes_per_s: number }>)[f]!.writes_per_s);
      return {
        params: { facts, factsFileMiB: fileMiB, synchronous: 'FULL', journal: 'WAL' },
        writes,
        ratio: { full_vs_normal_single: ratio('embedded', 'embedded_normal', 'single'), embedded_vs_memory_single: ratio('embedded', 'memory', 'single'), embedded_vs_redis_single: ratio('embedded', 'redis', 'single'), embedded_vs_redis_hundred: ratio('embedded', 'redis', 'hundred') },
        big: { writeSecs: round(writeSecs, 1), loadInProcessMs: loadMs, serverRestartMs: restartMs, serverAfterLoadMiB, agentColdStartMs, serverPeakMiB },
        note: 'latency in µs per write, one writer; concurrent16 = 16 writers through writeMany (group commit); Redis without persistence, as on this machine',
      };
    } finally {
      await server.stop('SIGTERM');
    }
  } finally {
    await h.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
