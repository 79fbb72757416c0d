import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { Harness, ADMIN } from './lib/harness.js';
import { LatencyRecorder, Progress, type Latency } from './lib/stats.js';
import { makeCertificates } from './lib/certs.js';
import { QUICK, cpuMs, cpuMsOf } from './scenarios.js';
import { offerWrites, slowConsumers } from './lib/offered-load.js';

/**
 * TLS against plain on the paths P1 and P2 measure, one run, one machine:
 * two replicas on Redis and 1,000 simulated agents, first served plain
 * (http/ws), then with TLS_CERT_FILE/TLS_KEY_FILE (https/wss, ECDSA P-256).
 * For each: the time to connect the fleet; P1, one writer with
 * `X-Wait-For: all` (write → every agent applied and acked), latency and
 * server CPU per acked delivery; P2, the same offered write rate to both,
 * deliveries (versions × agents applied) per second until the fleet has
 * applied them all, and server CPU per delivery. The plain run is the baseline.
 */
const AGENTS = QUICK ? 200 : 1000;
const P1_WRITES = QUICK ? 60 : 300;
const P2_SECONDS = QUICK ? 4 : 10;
/** Writes per second offered in P2 (TLS_P2_RATE): 50 × 1,000 agents = 50,000 deliveries/s. */
const P2_RATE = Number(process.env.TLS_P2_RATE ?? 50);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

interface Arm {
  connect_s: number;
  p1: Latency;
  p1_server_cpu_us_per_acked_delivery: number;
  p2_deliveries_per_s: number;
  p2_written_s: number;
  p2_drained_s: number;
  p2_complete: number;
  p2_server_cpu_us_per_delivery: number;
  p2_servers_busy_share: number;
  p2_fleet_busy_share: number;
  slow_consumers_cut: number;
}

async function arm(name: string, tls: { cert: string; key: string; ca: string } | undefined): Promise<Arm> {
  const prog = new Progress(`tls ${name}`);
  const h = new Harness();
  const ca = tls ? readFileSync(tls.ca, 'utf8') : undefined;
  const dispatcher = new Agent({ connections: 16, connect: ca ? { ca } : {} });
  try {
    await h.startRedis();
    const servers = await h.servers(2, tls ? { TLS_CERT_FILE: tls.cert, TLS_KEY_FILE: tls.key } : {});
    const urls = servers.map((s) => s.url);
    const write = async (i: number, wait: boolean) => {
      const res = await fetch(`${urls[i % 2]!}/v1/envs/bench/facts`, {
        method: 'POST', dispatcher,
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', ...(wait ? { 'x-wait-for': 'all', 'x-wait-timeout': '30' } : {}) },
        body: JSON.stringify({ ops: [{ op: 'upsert', type: 'user', key: `u${i % 5000}@x.io`, value: { email: `u${i}@x.io`, attributes: { n: i, team: 'bench' } } }] }),
      });
      const body = await res.json() as { sync?: { synced: boolean; acked: string[] } };
      if (res.status !== 200) throw new Error(`write ${i}: ${res.status} ${JSON.stringify(body)}`);
      return body;
    };

    prog.update(`connecting ${AGENTS} agents`, true);
    const c0 = performance.now();
    const fleet = await h.fleet({ kind: 'factsync', urls, count: AGENTS, ca });
    const connectS = (performance.now() - c0) / 1000;

    const rec = new LatencyRecorder();
    const cpu0 = cpuMs(servers);
    for (let i = 0; i < P1_WRITES; i++) {
      const t0 = performance.now();
      const r = await write(i, true);
      if (!r.sync?.synced || r.sync.acked.length !== AGENTS) throw new Error(`write ${i} not synced: ${JSON.stringify(r).slice(0, 300)}`);
      if (i >= 10) rec.record(performance.now() - t0); // the first writes warm the JIT
      prog.update(`P1 ${i + 1}/${P1_WRITES} writes`);
    }
    const p1Cpu = cpuMs(servers) - cpu0;

    // P2 offers the same write rate to both arms, below what this machine's simulated fleet can
    // apply (writing flat out, the faster arm outruns the fleet, its sockets are cut as slow
    // consumers and the sim agents do not reconnect: the rate would measure the fleet, not TLS).
    const fleetPids = fleet.children.map((c) => c.pid!);
    const busy0 = { servers: cpuMs(servers), fleet: cpuMsOf(fleetPids) };
    const { applied, total, writtenS, drainedS } = await offerWrites({ fleet, agents: AGENTS, rate: P2_RATE, seconds: P2_SECONDS, write: (i) => write(P1_WRITES + i, false), prog });
    const serversCpu = cpuMs(servers) - busy0.servers;
    const fleetCpu = cpuMsOf(fleetPids) - busy0.fleet;
    const slow = await slowConsumers(urls, async (u) => (await fetch(u, { dispatcher })).text());
    const p1 = rec.summary();
    const result: Arm = {
      connect_s: round(connectS),
      p1, p1_server_cpu_us_per_acked_delivery: round((p1Cpu * 1000) / (P1_WRITES * AGENTS)),
      p2_deliveries_per_s: Math.round(applied / drainedS), p2_written_s: round(writtenS), p2_drained_s: round(drainedS),
      p2_complete: applied >= total * AGENTS ? 1 : round(applied / (total * AGENTS)),
      p2_server_cpu_us_per_delivery: round((serversCpu * 1000) / Math.max(1, applied)),
      p2_servers_busy_share: round(serversCpu / (drainedS * 1000)), p2_fleet_busy_share: round(fleetCpu / (drainedS * 1000)),
      slow_consumers_cut: slow,
    };
    prog.done(`${name}: connect ${result.connect_s} s; P1 p50 ${p1.p50} ms p99 ${p1.p99} ms, ${result.p1_server_cpu_us_per_acked_delivery} µs server CPU per delivery; P2 ${result.p2_deliveries_per_s} deliveries/s (complete ${result.p2_complete}), ${result.p2_server_cpu_us_per_delivery} µs server CPU per delivery`);
    return result;
  } finally {
    await dispatcher.close();
    await h.close();
  }
}

export async function tls(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'factsync-bench-tls-'));
  try {
    const certs = makeCertificates(dir);
    const plain = await arm('plain', undefined);
    const secure = await arm('tls', certs);
    return {
      params: { agents: AGENTS, replicas: 2, p1_writes: P1_WRITES, p1_warmup: 10, p2_seconds: P2_SECONDS, p2_writes_per_s: P2_RATE, certificate: 'ECDSA P-256, TLS 1.3' },
      plain, tls: secure,
      ratio_tls_to_plain: {
        connect_time: round(secure.connect_s / plain.connect_s),
        p1_p50: round(secure.p1.p50 / plain.p1.p50), p1_p99: round(secure.p1.p99 / plain.p1.p99),
        p1_cpu_per_delivery: round(secure.p1_server_cpu_us_per_acked_delivery / plain.p1_server_cpu_us_per_acked_delivery),
        p2_deliveries: round(secure.p2_deliveries_per_s / plain.p2_deliveries_per_s),
        p2_cpu_per_delivery: round(secure.p2_server_cpu_us_per_delivery / plain.p2_server_cpu_us_per_delivery),
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
