/**
 * `npm run bench:report`: renders bench/results/*.json as the results table of
 * bench/README.md (between the results markers), so the README always shows
 * the figures of the last run with the machine they were measured on.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('./results/', import.meta.url));
const readme = fileURLToPath(new URL('./README.md', import.meta.url));
const load = (name: string): any => (existsSync(`${dir}${name}.json`) ? JSON.parse(readFileSync(`${dir}${name}.json`, 'utf8')) : undefined);
const ms = (x: number | undefined) => (x === undefined ? '–' : `${x} ms`);
const num = (x: number | undefined) => (x === undefined ? '–' : x.toLocaleString('en-US'));

const rows: string[] = ['| scenario | factsync | baseline (same run) | ratio | target |', '|---|---|---|---|---|'];
const p1 = load('p1');
if (p1) {
  rows.push(`| P1 fan-out, ${p1.params.agents} agents / 2 replicas, p50 | ${ms(p1.factsync.p50)} | ${ms(p1.baseline.p50)} (Socket.IO) | ${p1.ratio.p50}× | |`);
  rows.push(`| P1 fan-out, p99 | ${ms(p1.factsync.p99)} | ${ms(p1.baseline.p99)} | ${p1.ratio.p99}× | ≤ 25 ms and ≤ 0.5× |`);
}
if (p1?.server_cpu_us_per_acked_delivery) {
  rows.push(`| P1 server CPU per acked delivery | ${p1.server_cpu_us_per_acked_delivery.factsync} µs | ${p1.server_cpu_us_per_acked_delivery.baseline} µs (Socket.IO) | ${p1.ratio.cpu_per_delivery}× | |`);
}
const p1x = load('p1x');
if (p1x) {
  rows.push(`| P1x fan-out, ${num(p1x.params.agents)} agents / 2 replicas, p50 / p99 | ${ms(p1x.factsync.p50)} / ${ms(p1x.factsync.p99)} | ${ms(p1x.baseline.p50)} / ${ms(p1x.baseline.p99)} (Socket.IO) | ${p1x.ratio.p50}× / ${p1x.ratio.p99}× | |`);
  rows.push(`| P1x server CPU per acked delivery | ${p1x.server_cpu_us_per_acked_delivery.factsync} µs | ${p1x.server_cpu_us_per_acked_delivery.baseline} µs (Socket.IO) | ${p1x.ratio.cpu_per_delivery}× | |`);
}
const p2 = load('p2');
if (p2) {
  for (const k of Object.keys(p2).filter((k) => k.startsWith('agents_'))) {
    const r = p2[k];
    rows.push(`| P2 deliveries/s, ${k.slice(7)} agents | ${num(r.factsync)} (${num(r.factsync_writes_per_s)} writes/s) | ${num(r.baseline)} (${num(r.baseline_writes_per_s)} msgs/s, Socket.IO) | ${r.ratio}× | ≥ 1.5× |`);
  }
}
const p3 = load('p3');
if (p3) {
  for (const k of Object.keys(p3).filter((k) => k.startsWith('batch_'))) {
    const r = p3[k];
    rows.push(`| P3 writes/s, ${k.slice(6)} op(s) per write, ${p3.params.agents} agents | ${num(r.factsync.writes_per_s)} writes/s = ${num(r.factsync.ops_per_s)} ops/s (p99 ${ms(r.factsync.latency.p99)}) | ${num(r.baseline.evalsha_per_s)} EVALSHA/s (redis-benchmark) | ${r.ratio}× | |`);
    if (r.handwritten) {
      const a = r.factsync_no_agents;
      const hw = r.handwritten;
      rows.push(`| P3 ${k.slice(6)} op(s) per write, no agents: writes/s; server CPU per write | ${num(a.writes_per_s)}/s; ${a.server_cpu_us_per_write} µs | ${num(hw.writes_per_s)}/s; ${hw.server_cpu_us_per_write} µs (hand-written fastify + ioredis, same script) | ${r.vs_handwritten.writes_per_s}× writes/s, ${r.vs_handwritten.cpu_per_write}× CPU | |`);
    }
  }
}
const p4 = load('p4');
if (p4) {
  rows.push(`| P4 catch-up of ${num(p4.catch_up.versions)} versions | ${ms(p4.catch_up.ms)} (${num(p4.catch_up.versions_per_s)} versions/s) | | | ≤ 1 s |`);
  rows.push(`| P4 cold start, snapshot of ${num(p4.cold_start.facts)} facts | ${ms(p4.cold_start.ms)} (${num(p4.cold_start.facts_per_s)} facts/s) | | | |`);
  if (p4.cold_start.agent_peak_mib !== undefined) {
    rows.push(`| P4 cold start memory: server peak growth; agent peak (at rest) vs ${p4.cold_start.facts_mb} MB of facts | +${p4.cold_start.server_peak_extra_mib} MiB; ${p4.cold_start.agent_peak_mib} MiB (${p4.cold_start.agent_rss_idle_mib}) = ${p4.cold_start.agent_extra_over_facts}× the facts beyond rest | | | server < 64 MiB; agent < 2× |`);
  }
  if (p4.catch_up_large) {
    rows.push(`| P4 catch-up through ${p4.catch_up_large.versions} versions, ${num(p4.catch_up_large.mb)} MB | ${ms(p4.catch_up_large.ms)}, server peak +${p4.catch_up_large.server_peak_extra_mib} MiB | | | flat in the history |`);
  }
}
const p5 = load('p5');
if (p5) {
  for (const k of Object.keys(p5).filter((k) => k.startsWith('agents_') || k.startsWith('envs_'))) {
    const r = p5[k];
    const what = k.startsWith('envs_') ? `${num(r.agents)} agents in ${num(r.envs)} envs` : `${num(r.agents ?? Number(k.slice(7)))} agents`;
    const idle = r.idle_redis_ops_per_s !== undefined ? `; idle: ${Math.round(r.idle_server_cpu_share * 1000) / 10} % CPU, ${num(r.idle_redis_ops_per_s)} Redis ops/s` : '';
    rows.push(`| P5 server RSS per idle agent, ${what} | ${r.kib_per_agent} KiB${idle} | | | ≤ 16 KiB |`);
  }
}
const p6 = load('p6');
if (p6) {
  rows.push(`| P6 write through an agent, plain, p50 / p99 | ${ms(p6.plain.p50)} / ${ms(p6.plain.p99)} | | | |`);
  rows.push(`| P6 write + wait(local), p50 / p99 | ${ms(p6.wait_local.p50)} / ${ms(p6.wait_local.p99)} | plain | ${p6.ratio.p50}× / ${p6.ratio.p99}× | |`);
  if (p6.concurrent_wait_local) {
    const c = p6.concurrent_wait_local;
    rows.push(`| P6 ${c.writers} concurrent writers through one agent, wait(local) | ${num(c.writes_per_s)} writes/s, p50 / p99 ${ms(c.p50)} / ${ms(c.p99)} | | | |`);
  }
}
const p7 = load('p7');
if (p7) {
  const us = (x: { p50: number; p99: number }) => `${x.p50} / ${x.p99} µs`;
  const model = `${num(p7.params.facts)} facts`;
  for (const k of ['rbac', 'rebac', 'abac'] as const) {
    const name = { rbac: 'RBAC', rebac: 'ReBAC (2 hops)', abac: 'ABAC (JIT attributes)' }[k];
    rows.push(`| P7 ${name} check in process, p50 / p99 (${model}) | ${us(p7.inProcess[k])}, ${num(p7.inProcess[k].perSec)}/s | ${us(p7.cedar[k])}, ${num(p7.cedar[k].perSec)}/s (cedar-wasm) | ${p7.ratio[k].vs_cedar}× checks/s | ≤ 50 µs p99, ≥ 50× |`);
    if (p7.casbin[k]) rows.push(`| P7 ${name} check, casbin | | ${us(p7.casbin[k])}, ${num(p7.casbin[k].perSec)}/s (casbin) | ${p7.ratio[k].vs_casbin}× checks/s | |`);
    rows.push(`| P7 ${name} check over HTTP, p50 / p99; 16 clients | ${us(p7.http[k])}; ${num(p7.http[k].perSec16)}/s | | | ≤ 1 ms p99 |`);
  }
  rows.push(`| P7 apply one change, p50 / p99 | ${us(p7.apply)} | | | ≤ 10 µs p99 |`);
  const e = p7.enumeration;
  if (e) {
    const sized = (x: { p50: number; p99: number; results_p50: number; results_max: number }) => `${us(x)} (results p50 ${num(x.results_p50)}, max ${num(x.results_max)})`;
    rows.push(`| P7 who may write a document (ReBAC + RBAC), in process | ${sized(e.authorized_users_instance)} | | | |`);
    rows.push(`| P7 who may read documents in a tenant (RBAC), in process | ${sized(e.authorized_users_tenant)} | | | |`);
    rows.push(`| P7 which documents a user may read (first 100), in process | ${sized(e.resource_search)} | | | |`);
  }
  const az = p7.http?.authzen;
  if (az) {
    rows.push(`| P7 AuthZEN evaluation over HTTP, p50 / p99 | ${us(az.evaluation)} | ${us(az.allowed)} (/allowed) | ${Math.round((az.evaluation.p50 / az.allowed.p50) * 100) / 100}× p50 | |`);
    rows.push(`| P7 100 checks in one AuthZEN evaluations, p50 / p99 | ${us(az.evaluations_100)} | ${us(az.allowed_bulk_100)} (/allowed/bulk) | ${Math.round((az.evaluations_100.p50 / az.allowed_bulk_100.p50) * 100) / 100}× p50 | |`);
  }
  const l = p7.http?.listing;
  if (l) {
    for (const [k, label] of [['authorized_users', '/authorized_users'], ['search_subject', 'AuthZEN subject search'], ['search_resource', 'AuthZEN resource search']] as const) {
      rows.push(`| P7 ${label} over HTTP, p50 / p99 | ${us(l[k])} (results p50 ${num(l[k].results_p50)}, max ${num(l[k].results_max)}) | | | |`);
    }
  }
}
const headerDate = (p1 ?? p2 ?? p3 ?? p4 ?? p5 ?? p6)?.startedAt?.slice(0, 10);
// Rows of scenarios last run on another day say so: the table may mix runs.
const p8 = load('p8');
if (p8) {
  const w = p8.writes;
  const lat = (x: { p50_us: number; p99_us: number; writes_per_s: number }) => `${x.p50_us} / ${x.p99_us} µs, ${num(x.writes_per_s)}/s`;
  rows.push(`| P8 embedded store, single-op write, p50 / p99 | ${lat(w.embedded.single)} | ${lat(w.memory.single)} (memory) · ${lat(w.redis.single)} (Redis) | ${p8.ratio.embedded_vs_memory_single}× memory, ${p8.ratio.embedded_vs_redis_single}× Redis (writes/s) | |`);
  rows.push(`| P8 embedded store, 100-op write, p50 / p99 | ${lat(w.embedded.hundred)} | ${lat(w.memory.hundred)} (memory) · ${lat(w.redis.hundred)} (Redis) | ${p8.ratio.embedded_vs_redis_hundred}× Redis (writes/s) | |`);
  if (w.embedded_normal) rows.push(`| P8 embedded store, single-op write with synchronous=NORMAL (what FULL costs) | ${lat(w.embedded.single)} (FULL) | ${lat(w.embedded_normal.single)} (NORMAL) | ${p8.ratio.full_vs_normal_single}× writes/s | |`);
  rows.push(`| P8 embedded store, 16 concurrent writers | ${num(w.embedded.concurrent16.writes_per_s)}/s | ${num(w.memory.concurrent16.writes_per_s)}/s (memory) · ${num(w.redis.concurrent16.writes_per_s)}/s (Redis) | | |`);
  rows.push(`| P8 ${num(p8.params.facts)} facts (${p8.params.factsFileMiB} MiB file): server restart; agent cold start | ${ms(p8.big.serverRestartMs)} (peak ${p8.big.serverAfterLoadMiB} MiB); ${ms(p8.big.agentColdStartMs)} (server peak ${p8.big.serverPeakMiB} MiB) | | | |`);
}
const cliRun = load('cli');
if (cliRun) {
  for (const kind of ['redis', 'embedded']) {
    const r = cliRun[kind];
    if (!r) continue;
    const label = `CLI ${kind === 'redis' ? 'Redis' : 'embedded store'},`;
    rows.push(`| ${label} import of ${num(cliRun.facts)} facts (${cliRun.file_mib} MiB, ${r.import.writes} writes) | ${ms(r.import.ms)}, ${num(r.import.facts_per_s)} facts/s; CLI peak ${r.import.cli_peak_rss_mib} MiB, server +${r.import.server_peak_growth_mib} MiB | ${ms(r.import_baseline_bare_posts.ms)} (the same chunks POSTed bare) | ${r.import_baseline_bare_posts.ratio}× time | |`);
    rows.push(`| ${label} export of ${num(cliRun.facts)} facts at one version | ${ms(r.export.ms)}; CLI peak ${r.export.cli_peak_rss_mib} MiB, server +${r.export.server_peak_growth_mib} MiB | ${ms(r.export_baseline_get_snapshot.ms)}, server +${r.export_baseline_get_snapshot.server_peak_growth_mib} MiB (GET /snapshot) | ${r.export_baseline_get_snapshot.ratio}× time | |`);
    rows.push(`| ${label} reconcile of a ${num(cliRun.facts)}-fact scope, 1% different | ${ms(r.reconcile_1pct.ms)}, ${num(r.reconcile_1pct.ops_written)} ops in ${r.reconcile_1pct.writes} write; CLI peak ${r.reconcile_1pct.cli_peak_rss_mib} MiB, server +${r.reconcile_1pct.server_peak_growth_mib} MiB; nothing to change: ${ms(r.reconcile_nothing_to_change.ms)} | ${ms(r.import.ms)} (importing the whole file) | ${r.reconcile_1pct.ratio_to_import}× time | |`);
  }
}
const p9 = load('p9');
if (p9) {
  const m = p9.memory;
  const row = (label: string) => m.agents.find((a: { agent: string }) => a.agent === label);
  const [rest, whole, one, ten] = ['at rest (empty env)', 'whole', 'one tenant', 'ten tenants'].map(row);
  const held = (a: any) => `${num(a.facts)} facts, cold start ${ms(a.cold_start_ms)}, RSS ${a.rss_mib} MiB (heap ${a.heap_used_mib} MiB)`;
  rows.push(`| P9 scoped agent, one tenant of ${m.dataset.tenants} (${num(m.dataset.facts)} facts; users ${Math.round(m.dataset.shape.user * 100)}%, held by every scope) | ${held(one)} | ${held(whole)} (whole agent); at rest ${rest.rss_mib} MiB | facts ${m.ratio_to_whole.one_tenant.facts}×, RSS beyond rest ${m.ratio_to_whole.one_tenant.rss_over_rest}×, heap beyond rest ${m.ratio_to_whole.one_tenant.heap_over_rest}×, cold start ${m.ratio_to_whole.one_tenant.cold_start}× | facts memory ≤ 0.05× |`);
  rows.push(`| P9 scoped agent, ten tenants | ${held(ten)} | whole as above | facts ${m.ratio_to_whole.ten_tenants.facts}×, RSS beyond rest ${m.ratio_to_whole.ten_tenants.rss_over_rest}× | |`);
  const f = p9.fanout;
  const r = p9.ratio_scoped_to_whole;
  rows.push(`| P9 ${num(p9.params.agents)} agents in ${p9.params.tenants} scopes: P1 p50 / p99; server CPU per version | ${ms(f.scoped.p1.p50)} / ${ms(f.scoped.p1.p99)}; ${f.scoped.p1_server_cpu_ms_per_version} ms | ${ms(f.whole.p1.p50)} / ${ms(f.whole.p1.p99)}; ${f.whole.p1_server_cpu_ms_per_version} ms (${num(p9.params.agents)} whole agents) | ${r.p1_p50}× / ${r.p1_p99}×; ${r.p1_cpu_per_version}× CPU | |`);
  rows.push(`| P9 ${num(p9.params.agents)} agents in ${p9.params.tenants} scopes: P2 deliveries/s at ${p9.params.p2_writes_per_s} writes/s; server CPU per delivery; Redis commands per write | ${num(f.scoped.p2_deliveries_per_s)}; ${f.scoped.p2_server_cpu_us_per_delivery} µs; ${f.scoped.redis_commands_per_write} | ${num(f.whole.p2_deliveries_per_s)}; ${f.whole.p2_server_cpu_us_per_delivery} µs; ${f.whole.redis_commands_per_write} | ${r.p2_deliveries}×; ${r.p2_cpu_per_delivery}× CPU; ${r.redis_commands_per_write}× | |`);
}
for (const [tag, r] of [['P1x', p1x], ['P2', p2], ['P3', p3], ['P4', p4], ['P5', p5], ['P6', p6], ['P7', p7], ['P8', p8], ['CLI', cliRun], ['P9', p9]] as const) {
  const day = (r as { startedAt?: string } | undefined)?.startedAt?.slice(0, 10);
  if (!day || day === headerDate) continue;
  for (let i = 0; i < rows.length; i++) if (rows[i]!.startsWith(`| ${tag} `)) rows[i] = rows[i]!.replace(`| ${tag} `, `| ${tag} (run ${day}) `);
}
const machine = (p1 ?? p2 ?? p3 ?? p4 ?? p5 ?? p6)?.machine;
const when = (p1 ?? p2 ?? p3 ?? p4 ?? p5 ?? p6)?.startedAt;
const block = [
  '<!-- results:start -->',
  machine ? `Measured ${when?.slice(0, 10)} on ${machine.cpus} × ${machine.cpu}, ${machine.memGiB} GiB, ${machine.os}, Node ${machine.node}, ${machine.redis}; servers, simulated agents, the baseline and Redis all share this machine.` : 'No results yet: run `npm run bench`.',
  '',
  ...rows,
  '<!-- results:end -->',
].join('\n');
const text = readFileSync(readme, 'utf8');
writeFileSync(readme, text.replace(/<!-- results:start -->[\s\S]*<!-- results:end -->/, block));
process.stdout.write(`${block}\n`);
