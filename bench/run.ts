/**
 * `npm run bench` runs every scenario; `npm run bench -- p1 p3` runs some.
 * Each writes bench/results/<scenario>.json (raw figures, machine, baseline of
 * the same run); a table is printed at the end. BENCH_QUICK=1 shrinks them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { machineInfo } from './lib/stats.js';
import { PIN, pinGenerator } from './lib/harness.js';
import { QUICK, p1, p1x, p2, p3, p4, p5, p6 } from './scenarios.js';
import { renderChart } from './chart.js';
import { p7 } from './p7.js';
import { p8 } from './p8.js';
import { storm } from './storm.js';
import { cli } from './cli.js';
import { identity } from './identity.js';
import { tls } from './tls.js';
import { p9 } from './p9.js';
import { loop } from './loop.js';
import { cliStart } from './cli-start.js';
import { sources } from './sources.js';

const SCENARIOS: Record<string, { title: string; run: () => Promise<Record<string, unknown>> }> = {
  p1: { title: 'fan-out latency, write → all agents applied and acked', run: p1 },
  p1x: { title: 'fan-out at 10,000 agents: latency and server CPU per acked delivery', run: p1x },
  p2: { title: 'deliveries per second (versions × agents)', run: p2 },
  p3: { title: 'write throughput by batch size', run: p3 },
  p4: { title: 'catch-up and cold start', run: p4 },
  p5: { title: 'server memory per idle agent', run: p5 },
  p6: { title: 'write through an agent: plain vs wait(local)', run: p6 },
  p7: { title: 'permission checks: in process, over HTTP, against cedar-wasm and casbin', run: p7 },
  p8: { title: 'the durable embedded store: writes vs memory and Redis, restart and cold start with 1M facts', run: p8 },
  cli: { title: 'the command-line client: import, export and reconcile of 1M facts, beside bare POSTs, GET /snapshot and a whole import', run: cli },
  identity: { title: 'the cost of identity and TLS: writes/s and websocket connects/s with static tokens, HS256 and ES256 JWTs, and TLS', run: identity },
  tls: { title: 'TLS vs plain with 1,000 agents: fleet connect time, P1 fan-out latency and CPU per delivery, P2 deliveries/s', run: tls },
  p9: { title: 'scoped agents: a one-tenant agent of 1M facts over 100 tenants beside a whole one; 1,000 agents in 100 scopes vs 1,000 whole', run: p9 },
  sources: { title: 'the Postgres source: commit → applied at 200 tx/s, the first snapshot of 1M rows, and OPAL\'s whole query per change beside it', run: sources },
  'cli-start': { title: 'how long npx factsync takes to start: the built bin beside tsx, node and npx alone', run: cliStart },
  loop: { title: 'event-loop delay of an agent under heavy requests (bulks, box-cars, searches, listings), with a benign and a hostile policy', run: loop },
  storm: { title: 'snapshot storm: 20 readers of a 300k-fact env at once, and writes to another env meanwhile', run: storm },
};

const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

async function main(): Promise<void> {
  const asked = process.argv.slice(2).map((s) => s.toLowerCase());
  const unknown = asked.filter((s) => !SCENARIOS[s]);
  if (unknown.length) {
    process.stderr.write(`unknown scenario ${unknown.join(', ')}; choose from ${Object.keys(SCENARIOS).join(', ')}\n`);
    process.exit(2);
  }
  const names = asked.length ? asked : Object.keys(SCENARIOS);
  mkdirSync(RESULTS, { recursive: true });
  pinGenerator();
  const machine = { ...machineInfo(), pinned: PIN ? 'generator on core 0, servers on the last core; Redis and simulated agents float' : 'no' };
  const summary: Record<string, unknown> = {};
  for (const name of names) {
    const s = SCENARIOS[name]!;
    process.stderr.write(`\n== ${name.toUpperCase()}: ${s.title}${QUICK ? ' (quick)' : ''}\n`);
    const startedAt = new Date().toISOString();
    const t0 = Date.now();
    const result = await s.run();
    const doc = { scenario: name, title: s.title, quick: QUICK, startedAt, durationMs: Date.now() - t0, machine, ...result };
    writeFileSync(`${RESULTS}${name}.json`, `${JSON.stringify(doc, null, 2)}\n`);
    if (name === 'p1') writeFileSync(`${RESULTS}p1-latency.svg`, renderChart(doc as never));
    summary[name] = result;
  }
  process.stdout.write(`\n${JSON.stringify({ machine, results: summary }, null, 2)}\n`);
}

main().then(() => process.exit(0), (e: Error) => {
  process.stderr.write(`\nbench failed: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
