import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nanoid } from 'nanoid';
import { factInScope, scopeOf, type CheckRequest, type Fact, type Op } from '@factsync/shared';
import { ADMIN, AGENT, TOKENS } from '../src/inproc.js';
import { spawnAgent, spawnServer, type Proc } from '../src/procs.js';
import { client } from '../src/http.js';
import { randomModel, rng } from '../src/policy-model.js';
import { SOAK_SCALE, waitUntil } from '../src/wait.js';

/**
 * Invariant 11, differentially: one whole agent and scoped agents (one tenant,
 * three tenants, every tenant) as real processes follow the same env, written
 * over many versions from random models (the Cedar differential's generator,
 * its tenants spread over seven, most tuples given a tenant, rounds that move
 * instances and tuples between tenants,
 * give users roles in several tenants and revoke them, delete tuples and
 * users). After each round, at one version, every check in a tenant a scoped
 * agent serves answers as the whole agent; every other is 421.
 */
const TENANTS = ['default', 't1', 't2', 't3', 't4', 't5', 't6'];
const SCOPED: Record<string, string[]> = { one: ['t1'], three: ['t1', 't2', 'default'], every: TENANTS };
const ROUNDS = 6 * SOAK_SCALE;
const CHECKS = 80;
const FACT_TYPES = ['user', 'tenant', 'resource', 'role', 'role_assignment', 'resource_role', 'resource_instance', 'relationship', 'attribute', 'condition_set', 'condition_set_rule', 'ticket'];

const procs: Proc[] = [];
let server: Proc;
const agents: Record<string, Proc> = {};
const env = `sd-${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`;

beforeAll(async () => {
  server = await spawnServer({ REDIS_URL: inject('redisUrl'), KEY_PREFIX: `sd${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`, AUTH_TOKENS: TOKENS });
  procs.push(server);
  const started = await Promise.all(['whole', ...Object.keys(SCOPED)].map(async (id) => {
    const p = await spawnAgent({ SERVER_URL: server.url, AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: id, ...(SCOPED[id] ? { AGENT_TENANTS: SCOPED[id]!.join(',') } : {}) });
    procs.push(p);
    return [id, p] as const;
  }));
  for (const [id, p] of started) agents[id] = p;
}, 120_000);
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop('SIGTERM')));
});

/** One round's ops and checks: a random model whose three tenants are mapped onto three of TENANTS. */
function round(seed: number, state: Model): { ops: Op[]; checks: CheckRequest[] } {
  const r = rng(seed * 7919);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const shuffled = [...TENANTS].sort(() => r() - 0.5);
  const map: Record<string, string> = { default: shuffled[0]!, t1: shuffled[1]!, t2: shuffled[2]! };
  const m = randomModel(seed, CHECKS);
  const ops: Op[] = [];
  // Revocations first: a share of earlier role assignments, tuples, instances and a user.
  for (const k of state.assignments) if (r() < 0.3) ops.push({ op: 'delete', type: 'role_assignment', key: k });
  for (const k of state.tuples) if (r() < 0.15) ops.push({ op: 'delete', type: 'relationship', key: k });
  for (const k of state.instances.keys()) if (r() < 0.1) ops.push({ op: 'delete', type: 'resource_instance', key: k });
  if (r() < 0.5) ops.push({ op: 'delete', type: 'user', key: `u${Math.floor(r() * 4)}` });
  for (const o of m.ops) {
    if (o.op !== 'upsert') continue;
    const v = o.value as Record<string, unknown>;
    if (o.type === 'tenant') ops.push({ ...o, key: map[o.key]! });
    else if (o.type === 'role_assignment') {
      const t = map[v.tenant as string]!;
      ops.push({ ...o, key: `${v.user}/${v.role}/${t}`, value: { ...v, tenant: t } });
    } else if (o.type === 'resource_instance') ops.push({ ...o, value: { ...v, tenant: map[v.tenant as string]! } });
    // Most tuples belong to a tenant (they count only in its checks); the rest to none (they count everywhere).
    else if (o.type === 'relationship' && r() < 0.6) ops.push({ ...o, value: { ...v, tenant: r() < 0.7 ? map[pick(Object.keys(map))]! : pick(TENANTS) } });
    else ops.push(o);
  }
  for (let i = 0; i < 3; i++) ops.push({ op: 'upsert', type: 'ticket', key: `k${seed}-${i}`, value: { tenant: pick(TENANTS), n: i } });
  const checks = m.checks.map((c) => {
    const res = c.resource as { tenant?: string };
    return res.tenant === undefined ? c : { ...c, resource: { ...(c.resource as object), tenant: map[res.tenant] ?? res.tenant } } as CheckRequest;
  });
  // Explicit tenants in every check's variants: the same check asked in a random tenant.
  for (const c of m.checks.slice(0, CHECKS / 2)) checks.push({ ...c, resource: { ...(c.resource as object), tenant: pick(TENANTS) } } as CheckRequest);
  return { ops, checks };
}

interface Model { assignments: Set<string>; tuples: Set<string>; instances: Map<string, string> }
function track(state: Model, ops: readonly Op[]): void {
  for (const o of ops) {
    const set = o.type === 'role_assignment' ? state.assignments : o.type === 'relationship' ? state.tuples : undefined;
    if (set) o.op === 'upsert' ? set.add(o.key) : set.delete(o.key);
    if (o.type === 'resource_instance') o.op === 'upsert' ? state.instances.set(o.key, (o.value as { tenant: string }).tenant) : state.instances.delete(o.key);
  }
}

/** The tenant a whole agent decides a check in, or undefined when a scoped agent must refuse (no tenant, no instance it could hold). */
function tenantOfCheck(c: CheckRequest, state: Model): string | null {
  const res = c.resource as { type: string; key?: string; tenant?: string };
  if (res.tenant !== undefined) return res.tenant;
  if (res.key === undefined) return 'default';
  return state.instances.get(`${res.type}:${res.key}`) ?? null;
}

async function factsOf(url: string): Promise<Fact[]> {
  const out: Fact[] = [];
  for (const type of FACT_TYPES) {
    let cursor: string | null = null;
    do {
      const page: { status: number; body: any } = await client(url).get(`/v1/facts?type=${type}&limit=10000${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      out.push(...(page.body.facts as Fact[]));
      cursor = page.body.next_cursor;
    } while (cursor);
  }
  return out.sort((a, b) => `${a.type} ${a.key}`.localeCompare(`${b.type} ${b.key}`));
}

describe('scoped agents answer as a whole one (invariant 11), differentially, as real processes', () => {
  it(`${ROUNDS} rounds of random models over ${TENANTS.length} tenants: served checks agree at one version, others are 421`, async () => {
    const admin = client(server.url, ADMIN);
    const state: Model = { assignments: new Set(), tuples: new Set(), instances: new Map() };
    const ways = { rbac: 0, rebac: 0, abac: 0, denied: 0 };
    let compared = 0;
    let refused = 0;
    let listed = 0;
    let versions = 0;
    for (let k = 1; k <= ROUNDS; k++) {
      const { ops, checks } = round(20261204 + k, state);
      // Many versions per round: writes of at most 12 ops, the last one awaited by every agent.
      for (let i = 0; i < ops.length; i += 12) {
        const chunk = ops.slice(i, i + 12);
        const last = i + 12 >= ops.length;
        const w = await admin.post(`/v1/envs/${env}/facts`, { ops: chunk }, last ? { 'x-wait-for': 'all', 'x-wait-timeout': '30' } : {});
        expect(w.status, JSON.stringify(w.body)).toBe(200);
        versions = w.body.version;
        if (last) expect(w.body.sync, JSON.stringify(w.body.sync)).toMatchObject({ synced: true });
        track(state, chunk);
      }
      const debug = checks.map((c) => ({ ...c, debug: true }));
      const whole = await client(agents.whole!.url).post('/allowed/bulk', debug);
      expect(whole.status, JSON.stringify(whole.body)).toBe(200);
      expect(whole.body.version).toBe(versions);
      for (const a of whole.body.allow as { allow: boolean; reason: string }[]) {
        if (!a.allow) ways.denied++;
        else if (a.reason.startsWith('role "')) ways.rbac++;
        else if (a.reason.startsWith('rule ')) ways.abac++;
        else ways.rebac++;
      }

      for (const [id, tenants] of Object.entries(SCOPED)) {
        const url = agents[id]!.url;
        const served = checks.map((c) => tenantOfCheck(c, state)).map((t) => t !== null && tenants.includes(t));
        const mine = debug.filter((_, i) => served[i]);
        const got = await client(url).post('/allowed/bulk', mine);
        expect(got.status, JSON.stringify(got.body)).toBe(200);
        expect(got.body.version).toBe(versions);
        const expected = (whole.body.allow as { allow: boolean }[]).filter((_, i) => served[i]).map((a) => a.allow);
        const answers = (got.body.allow as { allow: boolean }[]).map((a) => a.allow);
        const diff = answers.findIndex((a, i) => a !== expected[i]);
        expect(diff, diff >= 0 ? `${id}: ${JSON.stringify(mine[diff])} whole ${expected[diff]}` : '').toBe(-1);
        compared += mine.length;
        // Every check outside its tenants is refused, never guessed.
        for (const c of checks.filter((_, i) => !served[i]).slice(0, 8)) {
          const one = await client(url).post('/allowed', c);
          expect(one.status, `${id}: ${JSON.stringify(c)} → ${JSON.stringify(one.body)}`).toBe(421);
          expect(one.body).toMatchObject({ error: 'tenant_not_served', tenants: [...tenants].sort() === tenants ? tenants : expect.any(Array) });
          refused++;
        }
        // Who may do it, in a served tenant: the same users with the same roles.
        for (const c of checks.filter((_, i) => served[i] && (checks[i]!.resource as { tenant?: string }).tenant !== undefined).slice(0, 6)) {
          const q = { action: c.action, resource: c.resource };
          const [a, b] = await Promise.all([client(url).post('/authorized_users', q), client(agents.whole!.url).post('/authorized_users', q)]);
          expect(a.status, JSON.stringify(a.body)).toBe(200);
          expect(a.body, `${id} authorized_users ${JSON.stringify(q)}`).toEqual(b.body);
          listed++;
        }
        // Permission lists within served tenants agree too.
        for (const user of ['u0', 'u1', 'u2']) {
          const q = { user: { key: user }, tenants: tenants.slice(0, 2) };
          const [a, b] = await Promise.all([client(url).post('/user-permissions', q), client(agents.whole!.url).post('/user-permissions', q)]);
          expect(a.status).toBe(200);
          expect(a.body, `${id} user-permissions of ${user}`).toEqual(b.body);
        }
      }
    }

    // Each agent holds exactly its share of what the whole agent holds.
    const all = await factsOf(agents.whole!.url);
    for (const [id, tenants] of Object.entries(SCOPED)) {
      const scope = scopeOf({ tenants })!;
      expect(await factsOf(agents[id]!.url), `${id}'s facts`).toEqual(all.filter((f) => factInScope(f, scope)));
    }
    const one = await factsOf(agents.one!.url);
    expect(one.length).toBeLessThan(all.length);

    console.log(`[scoped differential] ${versions} versions, ${compared} served checks compared, ${refused} refusals checked, ${listed} who-may lists compared; whole allowed by RBAC ${ways.rbac}, ReBAC ${ways.rebac}, ABAC ${ways.abac}; denied ${ways.denied}; facts whole ${all.length}, one tenant ${one.length}`);
    expect(ways.rbac).toBeGreaterThan(0);
    expect(ways.rebac).toBeGreaterThan(0);
    expect(ways.abac).toBeGreaterThan(0);
    expect(ways.denied).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    expect(listed).toBeGreaterThan(0);
  }, 300_000);
});
