import { spawnAgent, spawnServer, type Proc } from '../test/src/procs.js';
import { ADMIN, AGENT } from './lib/harness.js';
import { Progress } from './lib/stats.js';

/**
 * LOOP: how long one request can hold an agent's event loop. A real server and
 * agent process; the same requests (a bulk of 1,000 checks, AuthZEN box-cars
 * and subject searches, /authorized_users, /user-permissions) under a benign
 * policy (one rule) and under the hostile one that used to block an agent for
 * a minute (1,000 rules on one permission, each a 255-way anyOf). The agent's
 * own monitorEventLoopDelay (prom-client's nodejs_eventloop_lag_*, reset at
 * every scrape) gives p99 and max over each load. Goal: max < 50 ms.
 */

const QUICK = process.env.BENCH_QUICK === '1';
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const TOKENS = `${ADMIN}=admin:*,${AGENT}=agent:*`;

async function call(url: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: unknown; ms: number }> {
  const t0 = performance.now();
  const r = await fetch(new URL(path, url), {
    method: body === undefined ? 'GET' : 'POST',
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text, ms: performance.now() - t0 };
}

/** The agent's event-loop delay since the last scrape, in ms. */
async function loopDelay(agent: Proc): Promise<{ p99: number; max: number }> {
  const text = (await call(agent.url, '/metrics')).body as string;
  const read = (name: string) => Number(new RegExp(`^factsync_agent_process_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
  return { p99: round(read('p99')), max: round(read('max')) };
}

const up = (type: string, key: string, value: Record<string, unknown>) => ({ op: 'upsert', type, key, value });

function policy(rules: number, width: number): unknown[][] {
  const writes: unknown[][] = [[up('resource', 'doc', { actions: ['read', 'write'] })]];
  for (let from = 0; from < rules; from += 100) {
    writes.push(Array.from({ length: Math.min(100, rules - from) }, (_, k) => from + k).flatMap((i) => [
      up('condition_set', `us${i}`, { kind: 'userset', conditions: { anyOf: Array.from({ length: width }, (_, j) => ({ 'user.dept': { equals: `d${i}-${j}` } })) } }),
      up('condition_set_rule', `us${i}/doc:read/doc`, { user_set: `us${i}`, permission: 'doc:read', resource_set: 'doc' }),
    ]));
  }
  return writes;
}

async function load(agent: Proc, users: number, rounds: number, concurrent: boolean): Promise<Record<string, number>> {
  const u = (i: number) => `u${String(i % users).padStart(6, '0')}`;
  const worst: Record<string, number> = {};
  const time = async (name: string, p: Promise<{ status: number; ms: number }>): Promise<void> => {
    const r = await p;
    if (r.status !== 200) throw new Error(`${name}: status ${r.status}`);
    worst[name] = Math.max(worst[name] ?? 0, round(r.ms));
  };
  for (let k = 0; k < rounds; k++) {
    // Several at once (`concurrent`), or one after another: then the delay is what one request holds.
    const run = async (ps: (() => Promise<void>)[]): Promise<void> => {
      if (concurrent) await Promise.all(ps.map((p) => p()));
      else for (const p of ps) await p();
    };
    await run([
      () => time('bulk_1000_ms', call(agent.url, '/allowed/bulk', Array.from({ length: 1000 }, (_, i) => ({ user: u(i + k), action: 'read', resource: 'doc:1' })))),
      () => time('authzen_evaluations_1000_ms', call(agent.url, '/access/v1/evaluations', { action: { name: 'read' }, resource: { type: 'doc', id: '1' }, evaluations: Array.from({ length: 1000 }, (_, i) => ({ subject: { type: 'user', id: u(i) } })) })),
      () => time('subject_search_page_ms', call(agent.url, '/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'read' }, resource: { type: 'doc', id: '1' } })),
      () => time('authorized_users_ms', call(agent.url, '/authorized_users', { action: 'read', resource: { type: 'doc', key: '1' } })),
      () => time('user_permissions_ms', call(agent.url, '/user-permissions', { user: u(k) })),
      () => time('single_check_ms', call(agent.url, '/allowed', { user: u(k), action: 'read', resource: 'doc:1' })),
    ]);
  }
  return worst;
}

export async function loop(): Promise<Record<string, unknown>> {
  const users = QUICK ? 2000 : 20_000;
  const rounds = QUICK ? 2 : 5;
  const prog = new Progress('LOOP');
  const result: Record<string, unknown> = { users, rounds };
  for (const [label, rules, width] of [['benign', 1, 3], ['hostile', 1000, 255]] as const) {
    const server = await spawnServer({ AUTH_TOKENS: TOKENS, LOG_LEVEL: 'info' });
    const env = `loop-${label}`;
    const agent = await spawnAgent({ SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: `loop-${label}`, LOG_LEVEL: 'info' });
    try {
      let head = 0;
      const writes = [...policy(rules, width), ...Array.from({ length: users / 5000 }, (_, b) => Array.from({ length: 5000 }, (_, i) => up('user', `u${String(b * 5000 + i).padStart(6, '0')}`, { attributes: { dept: 'none' } })))];
      for (const [i, ops] of writes.entries()) {
        const r = await call(server.url, `/v1/envs/${env}/facts`, { ops }, ADMIN);
        if (r.status !== 200) throw new Error(`write ${i}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
        head = (r.body as { version: number }).version;
        prog.update(`${label}: writing the policy and ${users} users (${i + 1}/${writes.length})`);
      }
      for (;;) {
        const s = (await call(agent.url, '/v1/status')).body as { applied: number };
        if (s.applied >= head) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const runs: Record<string, unknown> = { rules, condition_width: width };
      for (const concurrent of [false, true]) {
        await loopDelay(agent); // reset the histogram: what follows is the load alone
        const worst = await load(agent, users, rounds, concurrent);
        const delay = await loopDelay(agent);
        const mode = concurrent ? 'six_at_once' : 'one_at_a_time';
        runs[mode] = { event_loop_p99_ms: delay.p99, event_loop_max_ms: delay.max, slowest_answers_ms: worst };
        prog.done(`${label}, ${mode}: event loop p99 ${delay.p99} ms, max ${delay.max} ms; slowest answers ${JSON.stringify(worst)}`);
      }
      result[label] = runs;
    } finally {
      await agent.stop();
      await server.stop();
    }
  }
  const max = (label: string) => (result[label] as Record<string, { event_loop_max_ms: number }>).one_at_a_time!.event_loop_max_ms;
  result.hostile_vs_benign_max_one_at_a_time = round(max('hostile') / max('benign'), 2);
  result.goal_max_ms = 50;
  return result;
}
