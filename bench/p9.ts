import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createRedisStore } from '@factsync/server';
import type { Op } from '@factsync/shared';
import { ADMIN, AGENT, Harness } from './lib/harness.js';
import { LatencyRecorder, Progress, peakKiB, resetPeak, rssKiB, type Latency } from './lib/stats.js';
import { QUICK, cpuMs, cpuMsOf, post } from './scenarios.js';
import { offerWrites, slowConsumers } from './lib/offered-load.js';

/**
 * P9: scoped agents (AGENT_TENANTS), one run, one machine.
 *
 * Memory: an env of 1M facts over 100 tenants (users, role assignments,
 * resource instances, relationship tuples of a tenant), and agent processes
 * cold-started on it: whole, one tenant, ten tenants; beside an agent of an
 * empty env (the process at rest). Time to apply the head, RSS and V8 heap.
 *
 * Fan-out: two replicas and 1,000 simulated agents, whole, then in 100
 * distinct scopes (10 agents each); the same writes (one role assignment of
 * tenant i % 100 each). P1: one writer with `X-Wait-For: all`, latency and
 * server CPU per version; P2: the same offered rate, deliveries (versions ×
 * agents) per second and server CPU per delivery; Redis commands per write.
 */
const TENANTS = 100;
const FACTS = QUICK ? 100_000 : 1_000_000;
const AGENTS = QUICK ? 200 : 1000;
const P1_WRITES = QUICK ? 60 : 300;
const P2_SECONDS = QUICK ? 4 : 10;
const P2_RATE = Number(process.env.P9_P2_RATE ?? 50);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The dataset's shape: shares of FACTS. Users hold roles in one to three tenants. */
const SHAPE = { user: 0.06, role_assignment: 0.14, resource_instance: 0.4, relationship: 0.4 };

function* dataset(): Generator<Op> {
  yield { op: 'upsert', type: 'resource', key: 'document', value: { actions: ['read', 'write'] } };
  yield { op: 'upsert', type: 'role', key: 'viewer', value: { permissions: ['document:read'] } };
  yield { op: 'upsert', type: 'resource_role', key: 'document#viewer', value: { permissions: ['read'] } };
  for (let t = 0; t < TENANTS; t++) yield { op: 'upsert', type: 'tenant', key: `t${t}`, value: { name: `Tenant ${t}` } };
  const users = Math.round(FACTS * SHAPE.user);
  for (let u = 0; u < users; u++) yield { op: 'upsert', type: 'user', key: `u${u}@x.io`, value: { email: `u${u}@x.io`, first_name: 'F', last_name: `L${u}`, attributes: { dept: u % 7 === 0 ? 'eng' : 'ops' } } };
  const assignments = Math.round(FACTS * SHAPE.role_assignment);
  for (let i = 0; i < assignments; i++) {
    const u = i % users;
    const t = (u + Math.floor(i / users) * 37) % TENANTS; // a user's first tenant, then others
    yield { op: 'upsert', type: 'role_assignment', key: `u${u}@x.io/viewer/t${t}`, value: { user: `u${u}@x.io`, role: 'viewer', tenant: `t${t}` } };
  }
  const instances = Math.round(FACTS * SHAPE.resource_instance);
  for (let i = 0; i < instances; i++) yield { op: 'upsert', type: 'resource_instance', key: `document:${i}`, value: { tenant: `t${i % TENANTS}`, attributes: { size: i % 1000 } } };
  const tuples = Math.round(FACTS * SHAPE.relationship);
  for (let i = 0; i < tuples; i++) {
    const d = i % instances;
    const u = (i * 7) % users;
    yield { op: 'upsert', type: 'relationship', key: `document:${d}#viewer@user:u${u}@x.io`, value: { object: `document:${d}`, relation: 'viewer', subject: `user:u${u}@x.io`, tenant: `t${d % TENANTS}` } };
  }
}

interface Held { agent: string; tenants: number; facts: number; cold_start_ms: number; rss_mib: number; heap_used_mib: number; peak_rss_mib: number; server_peak_extra_mib: number }

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`^${name} ([0-9.e+]+)`, 'm').exec(text)?.[1] ?? NaN);
}

async function memory(): Promise<Record<string, unknown>> {
  const h = new Harness();
  try {
    const redis = await h.startRedis();
    const [server] = await h.servers(1);
    const serverPid = server!.child.pid!;
    const store = await createRedisStore({
      url: redis.url, keyPrefix: h.keyPrefix, logRetention: 1000, idempotencyTtlSeconds: 60, inlineChangeBytes: 65536, commandTimeoutMs: 60_000, log: pino({ level: 'silent' }),
    });
    const prog = new Progress('P9 dataset');
    let written = 0;
    let batch: Op[] = [];
    const bytes: Record<string, number> = {};
    try {
      for (const op of dataset()) {
        bytes[op.type] = (bytes[op.type] ?? 0) + JSON.stringify({ type: op.type, key: op.key, value: (op as { value: unknown }).value }).length;
        batch.push(op);
        if (batch.length === 10_000) {
          await store.write('p9', { ops: batch, ts: new Date().toISOString() });
          written += batch.length;
          batch = [];
          prog.update(`${written}/${FACTS} facts`);
        }
      }
      if (batch.length) await store.write('p9', { ops: batch, ts: new Date().toISOString() }), (written += batch.length);
      await store.write('p9-empty', { ops: [{ op: 'upsert', type: 'tenant', key: 'x', value: {} }], ts: new Date().toISOString() });
    } finally {
      await store.close();
    }
    const head = (await (await fetch(`${server!.url}/v1/envs/p9/head`, { headers: { authorization: `Bearer ${ADMIN}` } })).json() as { version: number }).version;
    prog.done(`${written} facts over ${TENANTS} tenants, ${Math.round(Object.values(bytes).reduce((a, b) => a + b, 0) / 1e6)} MB of JSON`);

    const held: Held[] = [];
    const start = async (label: string, env: string, tenants: string[] | undefined) => {
      const p = new Progress(`P9 ${label}`);
      p.update('cold start', true);
      resetPeak(serverPid);
      const base = rssKiB(serverPid);
      const t0 = performance.now();
      const a = await h.agentProcess({ SERVER_URL: server!.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: `p9-${label.replace(/[^A-Za-z0-9]+/g, "-")}`, ...(tenants ? { AGENT_TENANTS: tenants.join(',') } : {}) });
      let st: { applied: number; facts: number } = { applied: 0, facts: 0 };
      const until = env === 'p9' ? head : 1;
      while ((st = await fetch(`${a.url}/v1/status`).then((r) => r.json() as Promise<typeof st>).catch(() => st)).applied < until) await sleep(20);
      const ms = performance.now() - t0;
      const serverPeak = peakKiB(serverPid) - base;
      await sleep(3000); // let V8 settle what the snapshot left behind
      const row: Held = {
        agent: label, tenants: tenants?.length ?? TENANTS, facts: st.facts, cold_start_ms: Math.round(ms),
        rss_mib: round(rssKiB(a.child.pid!) / 1024), heap_used_mib: round((await metric(a.url, 'factsync_agent_process_nodejs_heap_size_used_bytes')) / 2 ** 20),
        peak_rss_mib: round(peakKiB(a.child.pid!) / 1024), server_peak_extra_mib: round(serverPeak / 1024),
      };
      await a.stop('SIGTERM');
      p.done(`${row.facts} facts in ${row.cold_start_ms} ms, RSS ${row.rss_mib} MiB, heap ${row.heap_used_mib} MiB`);
      held.push(row);
      return row;
    };
    const rest = await start('at rest (empty env)', 'p9-empty', undefined);
    const whole = await start('whole', 'p9', undefined);
    const one = await start('one tenant', 'p9', ['t7']);
    const ten = await start('ten tenants', 'p9', Array.from({ length: 10 }, (_, i) => `t${i * 10 + 3}`));
    const factsMem = (r: Held) => ({ rss: r.rss_mib - rest.rss_mib, heap: r.heap_used_mib - rest.heap_used_mib });
    const usersShare = (bytes.user ?? 0) / Object.values(bytes).reduce((a, b) => a + b, 0);
    return {
      dataset: { facts: written, tenants: TENANTS, shape: SHAPE, json_mb_by_type: Object.fromEntries(Object.entries(bytes).map(([k, v]) => [k, round(v / 1e6)])), users_share_of_bytes: round(usersShare, 3) },
      agents: held,
      facts_memory_mib: { whole: factsMem(whole), one_tenant: factsMem(one), ten_tenants: factsMem(ten) },
      ratio_to_whole: {
        one_tenant: { facts: round(one.facts / whole.facts, 4), rss_over_rest: round(factsMem(one).rss / factsMem(whole).rss, 4), heap_over_rest: round(factsMem(one).heap / factsMem(whole).heap, 4), cold_start: round(one.cold_start_ms / whole.cold_start_ms, 3) },
        ten_tenants: { facts: round(ten.facts / whole.facts, 4), rss_over_rest: round(factsMem(ten).rss / factsMem(whole).rss, 4), cold_start: round(ten.cold_start_ms / whole.cold_start_ms, 3) },
      },
      goal: { one_tenant_facts_memory_ratio: 0.05 },
    };
  } finally {
    await h.close();
  }
}

async function redisCalls(url: string): Promise<number> {
  const r = new Redis(url);
  try {
    const info = await r.info('commandstats');
    return [...info.matchAll(/calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
  } finally {
    r.disconnect();
  }
}

interface Arm { slow_consumers_cut: number; connect_s: number; p1: Latency; p1_server_cpu_ms_per_version: number; p1_server_cpu_us_per_acked_delivery: number; p2_deliveries_per_s: number; p2_complete: number; p2_server_cpu_us_per_delivery: number; p2_fleet_busy_share: number; redis_commands_per_write: number; redis_used_memory_mib: number }

async function arm(name: string, scopes: number | undefined): Promise<Arm> {
  const prog = new Progress(`P9 fan-out ${name}`);
  const h = new Harness();
  try {
    const redis = await h.startRedis();
    const servers = await h.servers(2);
    const urls = servers.map((s) => s.url);
    const write = async (i: number, wait: boolean) => {
      const t = `t${i % TENANTS}`;
      const r = await post(`${urls[i % 2]!}/v1/envs/bench/facts`, { ops: [{ op: 'upsert', type: 'role_assignment', key: `u${i}/viewer/${t}`, value: { user: `u${i}`, role: 'viewer', tenant: t } }] },
        { authorization: `Bearer ${ADMIN}`, ...(wait ? { 'x-wait-for': 'all', 'x-wait-timeout': '30' } : {}) });
      if (r.status !== 200) throw new Error(`write ${i}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body as { sync?: { synced: boolean; acked: string[] } };
    };
    await write(-1 + TENANTS, false); // the env exists before the fleet says hello
    prog.update(`connecting ${AGENTS} agents`, true);
    const c0 = performance.now();
    const fleet = await h.fleet({ kind: 'factsync', urls, count: AGENTS, scopes });
    const connectS = (performance.now() - c0) / 1000;

    const rec = new LatencyRecorder();
    const calls0 = await redisCalls(redis.url);
    const cpu0 = cpuMs(servers);
    for (let i = 0; i < P1_WRITES; i++) {
      const t0 = performance.now();
      const r = await write(i, true);
      if (!r.sync?.synced || r.sync.acked.length !== AGENTS) throw new Error(`write ${i} not synced: ${JSON.stringify(r).slice(0, 300)}`);
      if (i >= 10) rec.record(performance.now() - t0);
      prog.update(`P1 ${i + 1}/${P1_WRITES} writes`);
    }
    const p1Cpu = cpuMs(servers) - cpu0;
    const calls = (await redisCalls(redis.url)) - calls0;

    const fleetPids = fleet.children.map((c) => c.pid!);
    const busy0 = { servers: cpuMs(servers), fleet: cpuMsOf(fleetPids) };
    const { applied, total, drainedS } = await offerWrites({ fleet, agents: AGENTS, rate: P2_RATE, seconds: P2_SECONDS, write: (i) => write(P1_WRITES + i, false), prog });
    const serversCpu = cpuMs(servers) - busy0.servers;
    const fleetCpu = cpuMsOf(fleetPids) - busy0.fleet;
    const r = new Redis(redis.url);
    const usedMemory = Number(/used_memory:(\d+)/.exec(await r.info('memory'))?.[1] ?? 0);
    r.disconnect();
    const p1 = rec.summary();
    const result: Arm = {
      slow_consumers_cut: await slowConsumers(urls), connect_s: round(connectS), p1,
      p1_server_cpu_ms_per_version: round(p1Cpu / P1_WRITES), p1_server_cpu_us_per_acked_delivery: round((p1Cpu * 1000) / (P1_WRITES * AGENTS)),
      p2_deliveries_per_s: Math.round(applied / drainedS), p2_complete: applied >= total * AGENTS ? 1 : round(applied / (total * AGENTS)),
      p2_server_cpu_us_per_delivery: round((serversCpu * 1000) / Math.max(1, applied)), p2_fleet_busy_share: round(fleetCpu / (drainedS * 1000)),
      redis_commands_per_write: round(calls / P1_WRITES), redis_used_memory_mib: round(usedMemory / 2 ** 20),
    };
    prog.done(`${name}: P1 p50 ${p1.p50} ms p99 ${p1.p99} ms, ${result.p1_server_cpu_ms_per_version} ms server CPU per version; P2 ${result.p2_deliveries_per_s} deliveries/s (complete ${result.p2_complete}, ${result.slow_consumers_cut} sockets cut as slow consumers), ${result.p2_server_cpu_us_per_delivery} µs per delivery; ${result.redis_commands_per_write} Redis commands per write`);
    return result;
  } finally {
    await h.close();
  }
}

export async function p9(): Promise<Record<string, unknown>> {
  // P9_PARTS=fanout (or memory) runs one half.
  const parts = process.env.P9_PARTS ?? 'memory,fanout';
  const mem = parts.includes('memory') ? await memory() : undefined;
  if (!parts.includes('fanout')) return { memory: mem };
  const whole = await arm('1,000 whole agents', undefined);
  const scoped = await arm(`1,000 agents in ${TENANTS} scopes`, TENANTS);
  return {
    params: { facts: FACTS, tenants: TENANTS, agents: AGENTS, replicas: 2, p1_writes: P1_WRITES, p2_seconds: P2_SECONDS, p2_writes_per_s: P2_RATE },
    memory: mem,
    fanout: { whole, scoped },
    ratio_scoped_to_whole: {
      p1_p50: round(scoped.p1.p50 / whole.p1.p50), p1_p99: round(scoped.p1.p99 / whole.p1.p99),
      p1_cpu_per_version: round(scoped.p1_server_cpu_ms_per_version / whole.p1_server_cpu_ms_per_version),
      p2_deliveries: round(scoped.p2_deliveries_per_s / whole.p2_deliveries_per_s),
      p2_cpu_per_delivery: round(scoped.p2_server_cpu_us_per_delivery / whole.p2_server_cpu_us_per_delivery),
      redis_commands_per_write: round(scoped.redis_commands_per_write / whole.redis_commands_per_write),
    },
  };
}
