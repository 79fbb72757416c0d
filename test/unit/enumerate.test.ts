import { describe, expect, it } from 'vitest';
import { normalizeCheck, parseOps, type Check, type Op } from '@factsync/shared';
import { Decider, LocalStore } from '@factsync/pdp-agent';
import { randomModel, rng, TYPES } from '../src/policy-model.js';

/**
 * The enumeration engine against its definition: on random models (roles
 * with extends, resource roles held directly, through subject sets and
 * derived by granted_to, condition set rules), every listed answer equals
 * running the check on each candidate the agent knows of, and paging through
 * it in small pages gives the same list.
 */
const MODELS = Number(process.env.ENUM_MODELS ?? 40);
const BASE_SEED = 20261201;

interface Page { keys: string[]; next: string | null }
function allPages(list: (p: { after?: string; limit: number }) => Page, limit: number): string[] {
  const out: string[] = [];
  let after: string | undefined;
  for (let i = 0; i < 1000; i++) {
    const p = list({ after, limit });
    expect(p.keys.length).toBeLessThanOrEqual(limit);
    out.push(...p.keys);
    if (p.next === null) return out;
    after = p.next;
  }
  throw new Error('paging did not end');
}

function build(seed: number) {
  const { ops } = randomModel(seed, 0);
  const valid = parseOps(ops as never);
  if (!valid.ok) throw new Error(valid.error);
  const store = new LocalStore();
  const decider = new Decider(store);
  let version = 0;
  const apply = (chunk: Op[]) => store.apply({ version: ++version, id: `v${version}`, ts: '', ops: chunk });
  for (let i = 0; i < ops.length; i += 9) apply(ops.slice(i, i + 9));
  const r = rng(seed ^ 0xe17);
  apply(ops.filter(() => r() < 0.1).map((o): Op => ({ op: 'delete', type: o.type, key: o.key })));
  // What the agent knows of, from the facts it holds now.
  const users = new Set<string>();
  const objects = new Set<string>();
  const tenants = new Set<string>(['default']);
  for (const f of store.all()) {
    const v = f.value as Record<string, string>;
    if (f.type === 'user') users.add(f.key);
    if (f.type === 'role_assignment') users.add(v.user!), tenants.add(v.tenant!);
    if (f.type === 'tenant') tenants.add(f.key);
    if (f.type === 'resource_instance') objects.add(f.key);
    if (f.type === 'relationship') {
      objects.add(v.object!);
      if (v.subject!.startsWith('user:')) users.add(v.subject!.slice(5));
    }
    if (f.type === 'attribute' && v.entity!.startsWith('user:')) users.add(v.entity!.slice(5));
  }
  return { decider, users: [...users].sort(), objects: [...objects].sort(), tenants: [...tenants].sort() };
}

const check = (user: string, action: string, type: string, key?: string, tenant?: string): Check => {
  const n = normalizeCheck({ user, action, resource: { type, ...(key ? { key } : {}), ...(tenant ? { tenant } : {}) } });
  if (!n.ok) throw new Error(n.error);
  return n.value;
};

describe('enumeration equals per-candidate checks', () => {
  it(`on ${MODELS} random models: subjects, resources, actions and tenants, in pages`, () => {
    let listed = 0;
    for (let seed = BASE_SEED; seed < BASE_SEED + MODELS; seed++) {
      const { decider, users, objects, tenants } = build(seed);
      const e = decider.enumerate;
      for (const [type, actions] of Object.entries(TYPES)) {
        const ofType = objects.filter((o) => o.startsWith(`${type}:`)).map((o) => o.slice(type.length + 1));
        for (const action of actions) {
          for (const key of [...ofType.slice(0, 3), undefined]) {
            const c = check('-', action, type, key);
            const expected = users.filter((u) => decider.check({ ...c, user: { key: u, attributes: {} } }).allow);
            expect(allPages((p) => e.subjects(c, p), 2), `seed ${seed}: who may ${action} ${type}:${key}`).toEqual(expected);
            listed += expected.length;
          }
          for (const user of users.slice(0, 4)) {
            for (const tenant of [undefined, 't1']) {
              const c = check(user, action, type, undefined, tenant);
              const expected = ofType.filter((k) => decider.check({ ...c, resource: { ...c.resource, key: k } }).allow);
              expect(allPages((p) => e.resources(c, p), 2), `seed ${seed}: which ${type} ${user} may ${action} (tenant ${tenant})`).toEqual(expected);
              listed += expected.length;
            }
            for (const key of [ofType[0], undefined]) {
              const t = check(user, action, type, key);
              // Tenants the agent knows of: tenant facts, tenants of role assignments, default, and the instance's own.
              const home = key === undefined ? undefined : decider.index.instances.get(`${type}:${key}`)?.tenant;
              const known = [...new Set([...tenants, ...(home ? [home] : [])])].sort();
              const inTenants = known.filter((x) => decider.check({ ...t, resource: { ...t.resource, tenant: x } }).allow);
              expect(allPages((p) => e.tenants(t, p), 1), `seed ${seed}: where ${user} may ${action} ${type}:${key}`).toEqual(inTenants);
            }
          }
        }
        for (const user of users.slice(0, 3)) {
          const c = check(user, '', type, ofType[0]);
          const all = decider.index.actionsOf(type).filter((action) => decider.check({ ...c, action }).allow).sort();
          expect(e.actions(c)).toEqual(all);
        }
      }
    }
    // The models must allow a fair number, or equality would mean little.
    expect(listed).toBeGreaterThan(500);
  });

  it('a page examines a bounded number of candidates and says where to go on', async () => {
    const { MAX_CANDIDATES_PER_PAGE } = await import('../../pdp-agent/src/decide/enumerate.js');
    const store = new LocalStore();
    const decider = new Decider(store);
    const n = MAX_CANDIDATES_PER_PAGE + 500;
    const ops: Op[] = [
      { op: 'upsert', type: 'resource', key: 'doc', value: { actions: ['read'] } },
      { op: 'upsert', type: 'condition_set', key: 'vip', value: { kind: 'userset', conditions: { allOf: [{ 'user.vip': { equals: true } }] } } },
      { op: 'upsert', type: 'condition_set_rule', key: 'vip/doc:read/doc', value: { user_set: 'vip', permission: 'doc:read', resource_set: 'doc' } },
    ];
    // Only the last user matches: the first page runs out of candidates first.
    for (let i = 0; i < n; i++) ops.push({ op: 'upsert', type: 'user', key: `u${String(i).padStart(6, '0')}`, value: { attributes: { vip: i === n - 1 } } });
    store.apply({ version: 1, id: 'v1', ts: '', ops });
    // Pages end at their candidates or their work (MAX_PAGE_WORK), whichever comes first, each with where to go on.
    const first = decider.enumerate.subjects(check('-', 'read', 'doc'), { limit: 10 });
    expect(first.keys).toEqual([]);
    expect(first.next).not.toBeNull();
    expect(first.next! <= `u${String(MAX_CANDIDATES_PER_PAGE - 1).padStart(6, '0')}`).toBe(true);
    const found: string[] = [];
    let pages = 1;
    for (let after = first.next; after !== null; pages++) {
      const page = decider.enumerate.subjects(check('-', 'read', 'doc'), { limit: 10, after });
      expect(page.next === null || page.next > after).toBe(true);
      found.push(...page.keys);
      after = page.next;
    }
    expect(found).toEqual([`u${String(n - 1).padStart(6, '0')}`]);
    expect(pages).toBeGreaterThan(1);
  });

  it('who may, by a rule, in tenant T: users known from T\'s facts or facts of no tenant, not from another tenant\'s', () => {
    const store = new LocalStore();
    const decider = new Decider(store);
    const ops: Op[] = [
      { op: 'upsert', type: 'resource', key: 'doc', value: { actions: ['read'] } },
      { op: 'upsert', type: 'condition_set', key: 'anyone', value: { kind: 'userset', conditions: { allOf: [] } } },
      { op: 'upsert', type: 'condition_set_rule', key: 'anyone/doc:read/doc', value: { user_set: 'anyone', permission: 'doc:read', resource_set: 'doc' } },
      // No user facts: ann is known by a role in acme, bob by one in globex, cy by a tuple of globex, dee by a tuple of no tenant.
      { op: 'upsert', type: 'role_assignment', key: 'ann/r/acme', value: { user: 'ann', role: 'r', tenant: 'acme' } },
      { op: 'upsert', type: 'role_assignment', key: 'bob/r/globex', value: { user: 'bob', role: 'r', tenant: 'globex' } },
      { op: 'upsert', type: 'relationship', key: 'doc:1#viewer@user:cy', value: { object: 'doc:1', relation: 'viewer', subject: 'user:cy', tenant: 'globex' } },
      { op: 'upsert', type: 'relationship', key: 'doc:2#viewer@user:dee', value: { object: 'doc:2', relation: 'viewer', subject: 'user:dee' } },
    ];
    store.apply({ version: 1, id: 'v1', ts: '', ops });
    const inAcme = check('-', 'read', 'doc', undefined, 'acme');
    expect(decider.enumerate.subjects(inAcme, { limit: 10 }).keys).toEqual(['ann', 'dee']);
    const inGlobex = check('-', 'read', 'doc', undefined, 'globex');
    expect(decider.enumerate.subjects(inGlobex, { limit: 10 }).keys).toEqual(['bob', 'cy', 'dee']);
  });
});
