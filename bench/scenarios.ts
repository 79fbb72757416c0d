import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import WebSocket from 'ws';
import { nanoid } from 'nanoid';
import { Redis } from 'ioredis';
import { Applier, LocalStore } from '@factsync/pdp-agent';
import { createRedisStore } from '@factsync/server';
import { PRODUCER_WINDOW, SnapshotAssembly, parseServerMessage, type Change, type Fact, type Op } from '@factsync/shared';
import { pino } from 'pino';
import { WRITE } from '../server/src/store/redis-scripts.js';
import { ADMIN, AGENT, Harness } from './lib/harness.js';
import { spawnTs, type Proc } from '../test/src/procs.js';
import { LatencyRecorder, Progress, peakKiB, resetPeak, rssKiB, type Latency } from './lib/stats.js';

export const QUICK = process.env.BENCH_QUICK === '1';
const n = (full: number, quick: number) => (QUICK ? quick : full);

// The load generator must cost less than what it measures: node:http with keep-alive is several
// times cheaper per request than fetch, which a profile of P3 showed to be the bottleneck.
const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 64 });
export function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', agent: keepAlive,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}
const writeUrl = (base: string, env: string) => `${base}/v1/envs/${env}/facts`;
const auth = { authorization: `Bearer ${ADMIN}` };
const sampleOps = (i: number, count = 1): Op[] =>
  Array.from({ length: count }, (_, j) => ({ op: 'upsert', type: 'user', key: `u${(i * count + j) % 5000}@x.io`, value: { email: `u${i}@x.io`, attributes: { n: i, team: 'bench' } } }));

/** P1: one writer, 1,000 agents over 2 replicas: write → every agent applied and acked, as `wait_for=all` sees it. */
export async function p1(): Promise<Record<string, unknown>> {
  return fanout('P1', n(1000, 200), n(300, 60));
}

/** P1 at 10,000 agents: the same fan-out, where the cost of acks (per agent, per replica) dominates. */
export async function p1x(): Promise<Record<string, unknown>> {
  return fanout('P1x', n(10_000, 2000), n(60, 20));
}

/**
 * One writer, `agents` over 2 replicas; the baseline is Socket.IO with the
 * Redis adapter over 2 nodes. Besides latency, the CPU time the two server
 * processes spent during the write loop (/proc utime+stime), per acked
 * delivery: what each system pays per agent per write.
 */
async function fanout(label: string, agents: number, writes: number): Promise<Record<string, unknown>> {
  const out: Record<string, Latency> = {};
  const cpu: Record<string, number> = {};
  let breakdown: Record<string, number> = {};
  {
    const h = new Harness();
    try {
      await h.startRedis();
      const servers = await h.servers(2);
      const prog = new Progress(`${label} factsync`);
      prog.update(`connecting ${agents} agents`, true);
      await h.fleet({ kind: 'factsync', urls: servers.map((s) => s.url), count: agents, onProgress: (r) => prog.update(`${r}/${agents} agents connected`) });
      const rec = new LatencyRecorder();
      const cpu0 = cpuMs(servers);
      for (let i = 0; i < writes; i++) {
        const t0 = performance.now();
        const r = await post(writeUrl(servers[i % 2]!.url, 'bench'), { ops: sampleOps(i) }, { ...auth, 'x-wait-for': 'all', 'x-wait-timeout': '30' });
        if (!r.body.sync?.synced || r.body.sync.acked.length !== agents) throw new Error(`write ${i} not synced: ${JSON.stringify(r.body).slice(0, 300)}`);
        if (i >= 10) rec.record(performance.now() - t0); // the first writes warm the JIT
        prog.update(`${i + 1}/${writes} writes`);
      }
      cpu.factsync = cpuMs(servers) - cpu0;
      out.factsync = rec.summary();
      breakdown = await serverBreakdown(servers.map((s) => s.url));
      prog.done(`p50 ${out.factsync.p50} ms, p99 ${out.factsync.p99} ms, server CPU ${round((cpu.factsync * 1000) / (writes * agents))} µs per acked delivery (store write ${breakdown.store_write_mean_ms} ms, waiting for acks ${breakdown.ack_wait_mean_ms} ms, mean)`);
    } finally {
      await h.close();
    }
  }
  {
    const h = new Harness();
    try {
      await h.startRedis();
      const nodes = await h.sioNodes(2);
      const prog = new Progress(`${label} socket.io`);
      prog.update(`connecting ${agents} clients`, true);
      await h.fleet({ kind: 'sio', urls: nodes.map((s) => s.url), count: agents });
      const rec = new LatencyRecorder();
      const cpu0 = cpuMs(nodes);
      for (let i = 0; i < writes; i++) {
        const t0 = performance.now();
        await post(`${nodes[i % 2]!.url}/publish?expect=${agents}`, { ops: sampleOps(i) });
        if (i >= 10) rec.record(performance.now() - t0);
        prog.update(`${i + 1}/${writes} broadcasts`);
      }
      cpu.baseline = cpuMs(nodes) - cpu0;
      out.baseline = rec.summary();
      prog.done(`p50 ${out.baseline.p50} ms, p99 ${out.baseline.p99} ms, server CPU ${round((cpu.baseline * 1000) / (writes * agents))} µs per acked delivery`);
    } finally {
      await h.close();
    }
  }
  const perDelivery = (ms: number) => round((ms * 1000) / (writes * agents));
  return {
    params: { agents, writes, replicas: 2, warmup: 10 },
    factsync: out.factsync, baseline: out.baseline, factsync_server_breakdown: breakdown,
    server_cpu_us_per_acked_delivery: { factsync: perDelivery(cpu.factsync!), baseline: perDelivery(cpu.baseline!) },
    ratio: {
      p50: round(out.factsync!.p50 / out.baseline!.p50), p99: round(out.factsync!.p99 / out.baseline!.p99),
      cpu_per_delivery: round(cpu.factsync! / cpu.baseline!),
    },
    ...(label === 'P1' ? { targets: { p99_ms: 25, p99_ratio: 0.5 } } : {}),
  };
}

/** CPU time (user + system) the processes have used so far, in ms. */
export function cpuMs(procs: Proc[]): number {
  return cpuMsOf(procs.map((p) => p.child.pid!));
}

export function cpuMsOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of the whole line)
  }
  return (ticks * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** Where the server's time goes, from its own histograms: the store write, then the wait for acks. */
async function serverBreakdown(urls: string[]): Promise<Record<string, number>> {
  let writeSum = 0, writeCount = 0, waitSum = 0, waitCount = 0;
  for (const u of urls) {
    const text = await (await fetch(`${u}/metrics`)).text();
    const get = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
    writeSum += get(/^factsync_write_duration_seconds_sum ([\d.e+-]+)$/m);
    writeCount += get(/^factsync_write_duration_seconds_count (\d+)$/m);
    waitSum += get(/^factsync_sync_wait_duration_seconds_sum\{synced="true"\} ([\d.e+-]+)$/m);
    waitCount += get(/^factsync_sync_wait_duration_seconds_count\{synced="true"\} (\d+)$/m);
  }
  return {
    store_write_mean_ms: round((writeSum / Math.max(1, writeCount)) * 1000),
    ack_wait_mean_ms: round((waitSum / Math.max(1, waitCount)) * 1000),
  };
}

/** P2: sustained writes; deliveries (versions × agents applied) per second, at 100 and 1,000 agents. */
export async function p2(): Promise<Record<string, unknown>> {
  const seconds = n(10, 4);
  const concurrency = 8;
  const result: Record<string, unknown> = { params: { seconds, concurrency, replicas: 2 } };
  for (const agents of [100, n(1000, 300)]) {
    const row: Record<string, number> = {};
    for (const kind of ['factsync', 'sio'] as const) {
      const h = new Harness();
      try {
        await h.startRedis();
        const nodes = kind === 'factsync' ? await h.servers(2) : await h.sioNodes(2);
        const urls = nodes.map((s) => s.url);
        const prog = new Progress(`P2 ${kind} ${agents}`);
        prog.update('connecting', true);
        const fleet = await h.fleet({ kind, urls, count: agents });
        const before = await fleet.applied();
        let writes = 0;
        const end = Date.now() + seconds * 1000;
        // Who is busy during the window: the two server nodes and the fleet of simulated agents.
        const fleetPids = fleet.children.map((c) => c.pid!);
        const cpu0 = { nodes: cpuMs(nodes), fleet: cpuMsOf(fleetPids) };
        const wall0 = performance.now();
        await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
          for (let i = w; Date.now() < end; i += concurrency) {
            if (kind === 'factsync') await post(writeUrl(urls[i % 2]!, 'bench'), { ops: sampleOps(i) }, auth);
            else await post(`${urls[i % 2]!}/publish`, { ops: sampleOps(i) });
            writes++;
            prog.update(`${writes} writes, ${Math.round((end - Date.now()) / 1000)} s left`);
          }
        }));
        const wall = performance.now() - wall0;
        const tag = kind === 'sio' ? 'baseline' : 'factsync';
        row[`${tag}_nodes_busy_share`] = round((cpuMs(nodes) - cpu0.nodes) / wall);
        row[`${tag}_fleet_busy_share`] = round((cpuMsOf(fleetPids) - cpu0.fleet) / wall);
        // Deliveries that land after the window still count, but the window is the denominator.
        const deadline = Date.now() + 10_000;
        let applied = 0;
        while (Date.now() < deadline && (applied = (await fleet.applied()) - before) < writes * agents) await sleep(100);
        const rate = applied / seconds;
        row[kind === 'sio' ? 'baseline' : 'factsync'] = Math.round(rate);
        row[`${kind === 'sio' ? 'baseline' : 'factsync'}_writes_per_s`] = Math.round(writes / seconds);
        row[`${kind === 'sio' ? 'baseline' : 'factsync'}_complete`] = applied >= writes * agents ? 1 : round(applied / (writes * agents));
        prog.done(`${Math.round(rate)} deliveries/s (${writes} writes)`);
      } finally {
        await h.close();
      }
    }
    result[`agents_${agents}`] = { ...row, ratio: round(row.factsync! / row.baseline!) };
  }
  return { ...result, targets: { ratio: 1.5 } };
}

/**
 * P3: write throughput with batches of 1, 10, 100 ops. Baselines in the same
 * run, with the same load generator: a hand-written fastify + ioredis handler
 * running the same WRITE script (what a user could write instead: the floor of
 * an HTTP write path), and redis-benchmark EVALSHA of the script (Redis alone).
 * factsync is measured without agents (the same work as the handler) and with
 * `P3_AGENTS` (default 10) agents receiving every write.
 */
export async function p3(): Promise<Record<string, unknown>> {
  const seconds = n(5, 2);
  const concurrency = 16;
  const agents = Number(process.env.P3_AGENTS ?? 10);
  const result: Record<string, unknown> = { params: { seconds, concurrency, agents, replicas: 1 } };
  /** Writes to one server process for `seconds`: writes/s, ops/s, latency, and the server's CPU per write. */
  const load = async (server: Proc, batch: number, label: string) => {
    const prog = new Progress(`P3 batch ${batch} ${label}`);
    let writes = 0;
    const rec = new LatencyRecorder();
    const end = Date.now() + seconds * 1000;
    const cpu0 = cpuMs([server]);
    const wall0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
      for (let i = w; Date.now() < end; i += concurrency) {
        const t0 = performance.now();
        const r = await post(writeUrl(server.url, 'bench'), { ops: sampleOps(i, batch) }, auth);
        if (r.status !== 200) throw new Error(`${label}: write failed: ${JSON.stringify(r.body)}`);
        rec.record(performance.now() - t0);
        writes++;
        prog.update(`${writes} writes`);
      }
    }));
    // The share of the wall time the server was busy (well under 1: the rest of the machine, not the server, bounds the figure).
    const serverCpu = cpuMs([server]) - cpu0;
    const wall = performance.now() - wall0;
    const out = {
      writes_per_s: Math.round(writes / seconds), ops_per_s: Math.round((writes * batch) / seconds), latency: rec.summary(),
      server_cpu_us_per_write: Math.round((serverCpu * 1000) / writes), server_busy_share: round(serverCpu / wall),
    };
    prog.done(`${out.writes_per_s} writes/s, server ${out.server_cpu_us_per_write} µs CPU per write, busy ${Math.round(out.server_busy_share * 100)} %`);
    return out;
  };
  for (const batch of (process.env.P3_BATCHES ?? '1,10,100').split(',').map(Number)) {
    const h = new Harness();
    try {
      const redis = await h.startRedis();
      const handwrittenProc = await spawnTs('bench/sim/handwritten-writer.ts', { PORT: '0', REDIS_URL: redis.url, TOKEN: ADMIN, KEY_PREFIX: `hw${batch}` }, 'handwritten writer listening');
      const handwritten = await load(handwrittenProc, batch, 'hand-written handler').finally(() => handwrittenProc.stop('SIGTERM'));
      const [server] = await h.servers(1);
      const factsyncAlone = await load(server!, batch, 'factsync, no agents');
      let factsync = factsyncAlone;
      if (agents > 0) {
        await h.fleet({ kind: 'factsync', urls: [server!.url], count: agents, processes: 1 });
        factsync = await load(server!, batch, `factsync, ${agents} agents`);
      }
      const baseline = redisBenchmarkEvalsha(redis.url, batch);
      result[`batch_${batch}`] = {
        factsync, factsync_no_agents: factsyncAlone, handwritten, baseline,
        ratio: round(factsync.writes_per_s / baseline.evalsha_per_s),
        vs_handwritten: {
          writes_per_s: round(factsyncAlone.writes_per_s / handwritten.writes_per_s),
          cpu_per_write: round(factsyncAlone.server_cpu_us_per_write / handwritten.server_cpu_us_per_write),
        },
      };
    } finally {
      await h.close();
    }
  }
  return result;
}

function redisBenchmarkEvalsha(url: string, batch: number): { evalsha_per_s: number } {
  const u = new URL(url);
  const sha = execFileSync('redis-cli', ['-h', u.hostname, '-p', u.port, 'SCRIPT', 'LOAD', WRITE], { encoding: 'utf8' }).trim();
  const ops = sampleOps(1, batch);
  const flat = ops.flatMap((o) => ['u', `user:${o.key}`, JSON.stringify((o as { value: unknown }).value)]);
  const args = ['-h', u.hostname, '-p', u.port, '-c', '16', '-n', String(n(50_000, 10_000)), '-q',
    // One write per call, as a lone write reaches the store (ARGV of the group-commit script with n = 1).
    // ARGV as redis-store.ts builds it: ..., n, window, then per write ts, ops, hash, idem key index, producer seq, flat count, flat ops.
    'EVALSHA', sha, '3', 'rb:{bench}:meta', 'rb:{bench}:log', 'rb:{bench}:state', 'epoch1', '100000', '86400', '65536', 'rb:{bench}:events', '1', String(PRODUCER_WINDOW),
    new Date().toISOString(), JSON.stringify(ops), 'request-hash', '0', '0', String(flat.length), ...flat];
  const out = execFileSync('redis-benchmark', args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  // A script that fails on its arguments is fast too: make sure the baseline wrote.
  const version = Number(execFileSync('redis-cli', ['-h', u.hostname, '-p', u.port, 'HGET', 'rb:{bench}:meta', 'version'], { encoding: 'utf8' }).trim() || 0);
  if (version < 1000) throw new Error(`the EVALSHA baseline did not write (version ${version}): its arguments no longer match the WRITE script`);
  const m = /([\d.]+) requests per second/.exec(out);
  return { evalsha_per_s: Math.round(Number(m?.[1] ?? 0)) };
}

/** P4: catch-up of an agent 100,000 versions behind; cold start from a snapshot of 1,000,000 facts. */
export async function p4(): Promise<Record<string, unknown>> {
  const behind = n(100_000, 20_000);
  const facts = n(1_000_000, 100_000);
  const bigVersions = n(300, 30);
  const h = new Harness();
  try {
    const redis = await h.startRedis();
    const [server] = await h.servers(1, { LOG_RETENTION: String(behind + 10), WS_MAX_BUFFERED_BYTES: String(512 * 1024 * 1024) });
    const serverPid = server!.child.pid!;
    const store = await createRedisStore({
      url: redis.url, keyPrefix: h.keyPrefix, logRetention: behind + 10, idempotencyTtlSeconds: 60, inlineChangeBytes: 65536, commandTimeoutMs: 60_000, log: pino({ level: 'silent' }),
    });
    try {
      // An agent that applied version 1, then went away.
      await store.write('catchup', { ops: sampleOps(0), ts: new Date().toISOString() });
      const first = await simAgent(server!.url, 'catchup', 0, null, null, 1);
      first.close();
      const prog = new Progress('P4 catch-up');
      for (let i = 0; i < behind; i += 500) {
        await Promise.all(Array.from({ length: Math.min(500, behind - i) }, (_, j) => store.write('catchup', { ops: sampleOps(i + j + 1), ts: new Date().toISOString() })));
        prog.update(`writing ${i + 500}/${behind} versions`);
      }
      const head = (await store.head('catchup')).version;
      prog.update('reconnecting', true);
      const t0 = performance.now();
      const again = await simAgent(server!.url, 'catchup', first.applied, first.epoch, first.id, head);
      const catchUpMs = performance.now() - t0;
      again.close();
      prog.done(`${behind} versions in ${Math.round(catchUpMs)} ms (snapshot used: ${again.snapshots > 0})`);

      // Catch-up through a history of huge versions (what bulk imports produce): ~2 MB each.
      const big = new Progress('P4 catch-up of large versions');
      await store.write('big', { ops: sampleOps(0), ts: new Date().toISOString() });
      const bigFirst = await simAgent(server!.url, 'big', 0, null, null, 1);
      bigFirst.close();
      let bigBytes = 0;
      for (let v = 0; v < bigVersions; v++) {
        const ops: Op[] = Array.from({ length: 20_000 }, (_, j) => ({ op: 'upsert', type: 'user', key: `bulk${j}@x.io`, value: { email: `bulk${j}@x.io`, attributes: { v, pad: 'p'.repeat(24) } } }));
        bigBytes += JSON.stringify(ops).length;
        await store.write('big', { ops, ts: new Date().toISOString() });
        big.update(`writing ${v + 1}/${bigVersions} versions (${Math.round(bigBytes / 1e6)} MB)`);
      }
      const bigHead = (await store.head('big')).version;
      big.update('reconnecting', true);
      resetPeak(serverPid);
      const bigBase = rssKiB(serverPid);
      const t2 = performance.now();
      const bigAgain = await simAgent(server!.url, 'big', bigFirst.applied, bigFirst.epoch, bigFirst.id, bigHead);
      const bigMs = performance.now() - t2;
      bigAgain.close();
      const bigPeak = peakKiB(serverPid) - bigBase;
      big.done(`${Math.round(bigBytes / 1e6)} MB in ${Math.round(bigMs)} ms, server peak +${Math.round(bigPeak / 1024)} MiB`);

      // Cold start of a real agent process from nothing: time and peak memory on both sides.
      const cold = new Progress('P4 cold start');
      let factBytes = 0;
      for (let i = 0; i < facts; i += 10_000) {
        const ops: Op[] = Array.from({ length: 10_000 }, (_, j) => ({ op: 'upsert', type: 'relationship', key: `document:${i + j}#viewer@user:${(i + j) % 997}`, value: { object: `document:${i + j}`, relation: 'viewer', subject: `user:${(i + j) % 997}` } }));
        for (const op of ops) factBytes += JSON.stringify({ type: op.type, key: op.key, value: (op as { value: unknown }).value }).length;
        await store.write('cold', { ops, ts: new Date().toISOString() });
        cold.update(`writing ${i + 10_000}/${facts} facts`);
      }
      const coldHead = (await store.head('cold')).version;
      cold.update('loading snapshot in an agent process', true);
      resetPeak(serverPid);
      const coldBase = rssKiB(serverPid);
      const t1 = performance.now();
      const agent = await h.agentProcess({ SERVER_URL: server!.url, AGENT_TOKEN: AGENT, AGENT_ENV: 'cold', AGENT_ID: 'p4-cold' });
      const agentIdle = rssKiB(agent.child.pid!);
      for (;;) {
        const st = await fetch(`${agent.url}/v1/status`).then((r) => r.json() as Promise<{ applied: number }>).catch(() => ({ applied: 0 }));
        if (st.applied >= coldHead) break;
        await sleep(20);
      }
      const coldMs = performance.now() - t1;
      const agentPeak = peakKiB(agent.child.pid!);
      const agentAfter = rssKiB(agent.child.pid!);
      const serverPeak = peakKiB(serverPid) - coldBase;
      await agent.stop('SIGTERM');
      cold.done(`${facts} facts (${Math.round(factBytes / 1e6)} MB) in ${Math.round(coldMs)} ms; agent peak ${Math.round(agentPeak / 1024)} MiB, server peak +${Math.round(serverPeak / 1024)} MiB`);
      return {
        params: { behind, facts, big_versions: bigVersions },
        catch_up: { versions: behind, ms: Math.round(catchUpMs), versions_per_s: Math.round(behind / (catchUpMs / 1000)), snapshot_used: again.snapshots > 0 },
        catch_up_large: { versions: bigVersions, mb: Math.round(bigBytes / 1e6), ms: Math.round(bigMs), mb_per_s: round(bigBytes / 1e6 / (bigMs / 1000)), server_peak_extra_mib: round(bigPeak / 1024) },
        cold_start: {
          facts, facts_mb: round(factBytes / 1e6), ms: Math.round(coldMs), facts_per_s: Math.round(facts / (coldMs / 1000)),
          agent_rss_idle_mib: round(agentIdle / 1024), agent_peak_mib: round(agentPeak / 1024), agent_after_mib: round(agentAfter / 1024),
          agent_peak_over_facts: round(agentPeak * 1024 / factBytes),
          // What the facts cost the agent beyond the process at rest (code, libraries).
          agent_extra_over_facts: round((agentPeak - agentIdle) * 1024 / factBytes), agent_transient_mib: round((agentPeak - agentAfter) / 1024),
          server_peak_extra_mib: round(serverPeak / 1024),
        },
        targets: { catch_up_ms: 1000, agent_extra_over_facts: 2, server_peak_extra_mib: 64 },
      };
    } finally {
      await store.close();
    }
  } finally {
    await h.close();
  }
}

/** One protocol client that applies with the agent's Applier and resolves once it reached `until`. */
async function simAgent(url: string, env: string, applied: number, epoch: string | null, id: string | null, until: number) {
  const store = new LocalStore();
  let snapshots = 0;
  const applier = new Applier(store, () => undefined, () => void snapshots++);
  if (applied > 0) store.replace(applied, epoch, [], id);
  const assembly = new SnapshotAssembly();
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${AGENT}` }, maxPayload: 2 ** 31 - 1, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', env, agent_id: `sim-${nanoid(4)}`, applied, epoch, applied_id: id, ack: true })));
    ws.on('error', reject);
    ws.on('message', (d) => {
      const m = parseServerMessage(d.toString());
      if (!m.ok) return reject(new Error(m.error));
      if (m.value.type === 'snapshot') {
        const s = assembly.add(m.value);
        if (s) applier.snapshot(s.version, s.epoch, s.facts, s.id, s.replay);
      } else if (m.value.type === 'changes') applier.offer(m.value.changes as Change[]);
      if (store.version >= until) resolve();
    });
  });
  return { applied: store.version, epoch: store.epoch, id: store.lastId, snapshots, close: () => ws.terminate() };
}

/**
 * P5: server memory per idle connected agent, at growing counts on one
 * replica (up to what this machine's open-file limit lets one process hold),
 * and with the agents spread over 10,000 envs: memory, and what idle costs
 * (server CPU, Redis commands per second) once nothing is written.
 */
export async function p5(): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  // One socket per agent, plus Redis connections and the rest: stay under the process's file limit.
  const fdLimit = Number(/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 20_000);
  const largest = Math.min(50_000, fdLimit - 500);
  const runs: { label: string; agents: number; envs?: number }[] = [
    { label: 'agents_1000', agents: 1000 },
    { label: 'agents_10000', agents: n(10_000, 2000) },
    { label: `agents_${n(largest, 4000)}`, agents: n(largest, 4000) },
    { label: 'envs_10000', agents: n(10_000, 2000), envs: n(10_000, 2000) },
  ];
  for (const run of runs) {
    const h = new Harness();
    try {
      const redis = await h.startRedis();
      const [server] = await h.servers(1, { PING_INTERVAL_MS: '30000' });
      const pid = server!.child.pid!;
      const prog = new Progress(`P5 ${run.label}`);
      if (run.envs) {
        // Envs exist only once written: one fact each.
        const store = await createRedisStore({ url: redis.url, keyPrefix: h.keyPrefix, logRetention: 100, idempotencyTtlSeconds: 60, inlineChangeBytes: 4096, commandTimeoutMs: 30_000, log: pino({ level: 'silent' }) });
        for (let i = 0; i < run.envs; i += 500) {
          await Promise.all(Array.from({ length: Math.min(500, run.envs - i) }, (_, j) => store.write(`bench-${i + j}`, { ops: sampleOps(i + j), ts: new Date().toISOString() })));
          prog.update(`creating envs ${i + 500}/${run.envs}`);
        }
        await store.close();
      }
      // Warm the server up with a few sessions first, so the baseline includes what any first session loads.
      const warm = await h.fleet({ kind: 'factsync', urls: [server!.url], count: 10, idle: true, processes: 1 });
      await sleep(1000);
      const before = rssKiB(pid);
      prog.update(`connecting ${run.agents} idle agents`, true);
      const fleet = await h.fleet({ kind: 'factsync', urls: [server!.url], count: run.agents, envs: run.envs, idle: true, processes: Math.ceil(run.agents / 2500) });
      await sleep(3000);
      const after = rssKiB(pid);
      // Idle cost: nothing is written for 10 s.
      const cmds0 = await redisCommands(redis.url);
      const cpu0 = cpuMs([server!]);
      await sleep(10_000);
      const idleCpu = (cpuMs([server!]) - cpu0) / 10_000;
      const redisOps = ((await redisCommands(redis.url)) - cmds0) / 10;
      const perAgent = (after - before) / run.agents;
      result[run.label] = {
        agents: run.agents, envs: run.envs ?? 1, rss_before_kib: before, rss_after_kib: after, kib_per_agent: round(perAgent),
        idle_server_cpu_share: round(idleCpu), idle_redis_ops_per_s: Math.round(redisOps),
      };
      prog.done(`${round(perAgent)} KiB per idle agent (RSS ${before} → ${after} KiB); idle: server ${round(idleCpu * 100)}% of a core, Redis ${Math.round(redisOps)} ops/s`);
      await fleet.close();
      await warm.close();
    } finally {
      await h.close();
    }
  }
  return { ...result, limits: { open_files_per_process: fdLimit }, targets: { kib_per_agent: 16, agents_one_replica: 50_000 } };
}

async function redisCommands(url: string): Promise<number> {
  const r = new Redis(url);
  try {
    return Number(/total_commands_processed:(\d+)/.exec(await r.info('stats'))?.[1] ?? 0);
  } finally {
    r.disconnect();
  }
}

/** P6: latency of a write through an agent, plain (timeout 0) vs waiting until that agent applied it (local). */
export async function p6(): Promise<Record<string, unknown>> {
  const writes = n(500, 100);
  const h = new Harness();
  try {
    await h.startRedis();
    const [server] = await h.servers(1);
    const agent = await h.agentProcess({ SERVER_URL: server!.url, AGENT_TOKEN: AGENT, AGENT_ENV: 'bench', AGENT_ID: 'p6' });
    await waitReady(agent.url);
    const out: Record<string, Latency> = {};
    for (const [name, headers] of [['plain', { 'x-wait-timeout': '0' }], ['wait_local', { 'x-wait-timeout': '5' }]] as const) {
      const rec = new LatencyRecorder();
      const prog = new Progress(`P6 ${name}`);
      for (let i = 0; i < writes + 20; i++) {
        const t0 = performance.now();
        const r = await post(`${agent.url}/v1/facts`, { ops: sampleOps(i) }, headers);
        if (name === 'wait_local' && !r.body.synced) throw new Error('local wait not synced');
        if (i >= 20) rec.record(performance.now() - t0);
        prog.update(`${i + 1}/${writes + 20}`);
      }
      out[name] = rec.summary();
      prog.done(`p50 ${out[name]!.p50} ms, p99 ${out[name]!.p99} ms`);
    }
    // Many writers through one agent at once, each waiting for the agent's own apply (the default):
    // what forwarding in batches is for. Throughput, and latency per write.
    const writers = 16;
    const perWriter = n(200, 40);
    const rec = new LatencyRecorder();
    const prog = new Progress(`P6 ${writers} concurrent writers`);
    let done = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; i < perWriter; i++) {
        const t = performance.now();
        const r = await post(`${agent.url}/v1/facts`, { ops: sampleOps(w * perWriter + i) }, { 'x-wait-timeout': '5' });
        if (!r.body.synced) throw new Error(`concurrent write not synced: ${JSON.stringify(r.body)}`);
        rec.record(performance.now() - t);
        if (++done % 100 === 0) prog.update(`${done}/${writers * perWriter}`);
      }
    }));
    const seconds = (performance.now() - t0) / 1000;
    const concurrent = { writers, writes: writers * perWriter, writes_per_s: Math.round((writers * perWriter) / seconds), ...rec.summary() };
    prog.done(`${concurrent.writes_per_s} writes/s, p50 ${concurrent.p50} ms, p99 ${concurrent.p99} ms`);
    return {
      params: { writes }, plain: out.plain, wait_local: out.wait_local,
      ratio: { p50: round(out.wait_local!.p50 / out.plain!.p50), p99: round(out.wait_local!.p99 / out.plain!.p99) },
      concurrent_wait_local: concurrent,
    };
  } finally {
    await h.close();
  }
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200) return;
    await sleep(50);
  }
  throw new Error(`${url} not ready`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const round = (x: number) => Math.round(x * 100) / 100;
