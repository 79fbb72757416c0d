import * as hdr from 'hdr-histogram-js';
import { newEnforcer, newModelFromString } from 'casbin';
import { Decider, LocalStore } from '@factsync/pdp-agent';
import { normalizeCheck, parseOps, type Check, type CheckRequest, type Op } from '@factsync/shared';
import { CedarOracle } from '../test/src/cedar-oracle.js';
import { rng } from '../test/src/policy-model.js';
import { ADMIN, AGENT, Harness } from './lib/harness.js';
import { Progress } from './lib/stats.js';
import { post } from './scenarios.js';

/**
 * P7: permission checks. One model (10k users, 100 tenants, 50k role
 * assignments, 100k relationships, 25k resource instances, condition sets),
 * decided by factsync's evaluator in process and over loopback HTTP (a real
 * agent process that received the model through a real server), by
 * @cedar-policy/cedar-wasm (policy set parsed once, each request given only
 * the entities it needs: Cedar at its best) and by casbin (RBAC with domains
 * and ReBAC as a role graph; casbin has no just-in-time attributes, so no ABAC).
 */

const QUICK = process.env.BENCH_QUICK === '1';
const n = (full: number, quick: number) => (QUICK ? quick : full);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

interface Scale { users: number; tenants: number; assignments: number; relationships: number; documents: number; folders: number; groups: number }
export const SCALE: Scale = QUICK
  ? { users: 1000, tenants: 20, assignments: 5000, relationships: 10_000, documents: 2000, folders: 400, groups: 100 }
  : { users: 10_000, tenants: 100, assignments: 50_000, relationships: 100_000, documents: 20_000, folders: 4000, groups: 1000 };

interface Built { ops: Op[]; checks: Record<'rbac' | 'rebac' | 'abac', CheckRequest[]>; casbin: { p: string[][]; g: string[][]; g2: string[][] } }

export function buildModel(s: Scale, checksPerKind: number): Built {
  const r = rng(7);
  const int = (k: number) => Math.floor(r() * k);
  const ops: Op[] = [];
  const up = (type: string, key: string, value: Record<string, unknown>) => ops.push({ op: 'upsert', type, key, value });
  const depts = ['eng', 'sales', 'ops', 'legal'];
  const tenants = Array.from({ length: s.tenants }, (_, i) => `t${i}`);
  const casbin = { p: [] as string[][], g: [] as string[][], g2: [] as string[][] };

  for (const t of tenants) up('tenant', t, {});
  for (let i = 0; i < s.users; i++) up('user', `u${i}`, { attributes: { dept: depts[i % depts.length], level: i % 6 } });
  up('resource', 'document', { actions: ['read', 'write', 'delete', 'share'] });
  up('resource', 'folder', { actions: ['read', 'write'] });
  up('resource', 'group', { actions: ['view'] });
  up('resource', 'report', { actions: ['read'] });
  const roles: Record<string, { permissions: string[]; extends: string[] }> = {
    viewer: { permissions: ['document:read', 'folder:read'], extends: [] },
    editor: { permissions: ['document:write', 'folder:write'], extends: ['viewer'] },
    admin: { permissions: ['document:delete', 'document:share'], extends: ['editor'] },
  };
  for (let i = 0; i < 7; i++) roles[`custom${i}`] = { permissions: [`report:read`, 'document:read'].slice(0, 1 + (i % 2)), extends: i % 3 === 0 ? ['viewer'] : [] };
  for (const [k, v] of Object.entries(roles)) {
    up('role', k, v);
    for (const p of v.permissions) casbin.p.push([k, p.split(':')[0]!, p.split(':')[1]!]);
    for (const t of tenants) for (const e of v.extends) casbin.g.push([k, e, t]);
  }
  const roleKeys = Object.keys(roles);
  const assignments: [string, string, string][] = [];
  const seenRa = new Set<string>();
  while (assignments.length < s.assignments) {
    const a: [string, string, string] = [`u${int(s.users)}`, roleKeys[int(roleKeys.length)]!, tenants[int(s.tenants)]!];
    const k = a.join('/');
    if (seenRa.has(k)) continue;
    seenRa.add(k);
    assignments.push(a);
    up('role_assignment', k, { user: a[0], role: a[1], tenant: a[2] });
    casbin.g.push(a);
  }

  up('resource_role', 'folder#viewer', { permissions: ['read'] });
  up('resource_role', 'folder#editor', { permissions: ['read', 'write'], extends: ['viewer'] });
  up('resource_role', 'document#viewer', { permissions: ['read'], granted_to: [{ role: 'viewer', on: 'folder', via: 'parent' }] });
  up('resource_role', 'document#editor', { permissions: ['read', 'write'], extends: ['viewer'], granted_to: [{ role: 'editor', on: 'folder', via: 'parent' }] });
  up('resource_role', 'group#member', { permissions: ['view'] });
  for (const [type, role, perms] of [['folder', 'viewer', ['read']], ['folder', 'editor', ['read', 'write']], ['document', 'viewer', ['read']], ['document', 'editor', ['read', 'write']], ['group', 'member', ['view']]] as const) {
    for (const a of perms) casbin.p.push([`#${role}`, type, a]);
  }

  const docTenant: string[] = [];
  const docsByTenant = new Map<string, number[]>();
  for (let i = 0; i < s.documents; i++) {
    const t = tenants[int(s.tenants)]!;
    docTenant.push(t);
    const list = docsByTenant.get(t);
    if (list) list.push(i);
    else docsByTenant.set(t, [i]);
    up('resource_instance', `document:d${i}`, { tenant: t, attributes: { public: i % 2 === 0 } });
  }
  for (let i = 0; i < s.folders; i++) up('resource_instance', `folder:f${i}`, { tenant: tenants[int(s.tenants)]! });

  let rels = 0;
  const rel = (object: string, relation: string, subject: string) => {
    rels++;
    up('relationship', `${object}#${relation}@${subject}`, { object, relation, subject });
  };
  const parentOf: number[] = [];
  const memberships: [number, number][] = [];
  const folderEditorGroups = new Map<number, number[]>();
  // Parents of documents (≈ 20%), group memberships (20%), folder editors by group (10%), folder viewers (10%), document roles (rest).
  for (let i = 0; i < s.documents; i++) {
    parentOf.push(int(s.folders));
    rel(`document:d${i}`, 'parent', `folder:f${parentOf[i]}`);
    casbin.g2.push([`folder:f${parentOf[i]}#viewer`, `document:d${i}#viewer`], [`folder:f${parentOf[i]}#editor`, `document:d${i}#editor`]);
  }
  const relsSoFar = () => rels;
  const memberTarget = s.relationships * 0.4;
  const seenRel = new Set<string>();
  const once = (k: string) => (seenRel.has(k) ? false : (seenRel.add(k), true));
  while (relsSoFar() < memberTarget) {
    const u = int(s.users), g = int(s.groups);
    if (!once(`m${u}/${g}`)) continue;
    memberships.push([u, g]);
    rel(`group:g${g}`, 'member', `user:u${u}`);
    casbin.g2.push([`u${u}`, `group:g${g}#member`]);
  }
  while (relsSoFar() < s.relationships * 0.5) {
    const f = int(s.folders), g = int(s.groups);
    if (!once(`fe${f}/${g}`)) continue;
    folderEditorGroups.set(f, [...(folderEditorGroups.get(f) ?? []), g]);
    rel(`folder:f${f}`, 'editor', `group:g${g}#member`);
    casbin.g2.push([`group:g${g}#member`, `folder:f${f}#editor`]);
  }
  while (relsSoFar() < s.relationships * 0.6) {
    const f = int(s.folders), u = int(s.users);
    if (!once(`fv${f}/${u}`)) continue;
    rel(`folder:f${f}`, 'viewer', `user:u${u}`);
    casbin.g2.push([`u${u}`, `folder:f${f}#viewer`]);
  }
  while (relsSoFar() < s.relationships) {
    const d = int(s.documents), u = int(s.users), role = r() < 0.5 ? 'viewer' : 'editor';
    if (!once(`d${d}/${u}/${role}`)) continue;
    rel(`document:d${d}`, role, `user:u${u}`);
    casbin.g2.push([`u${u}`, `document:d${d}#${role}`]);
  }
  for (let i = 0; i < s.folders; i++) casbin.g2.push([`folder:f${i}#editor`, `folder:f${i}#viewer`]);
  for (let i = 0; i < s.documents; i++) casbin.g2.push([`document:d${i}#editor`, `document:d${i}#viewer`]);

  up('condition_set', 'engineers', { kind: 'userset', conditions: { allOf: [{ 'user.dept': { equals: 'eng' } }, { 'user.level': { 'greater-than-equals': 2 } }] } });
  up('condition_set', 'public-docs', { kind: 'resourceset', resource: 'document', conditions: { allOf: [{ 'resource.public': { equals: true } }] } });
  up('condition_set_rule', 'engineers/document:share/public-docs', { user_set: 'engineers', permission: 'document:share', resource_set: 'public-docs' });

  const membersOf = new Map<number, number[]>();
  for (const [u, g] of memberships) membersOf.set(g, [...(membersOf.get(g) ?? []), u]);
  const checks: Built['checks'] = { rbac: [], rebac: [], abac: [] };
  for (let i = 0; i < checksPerKind; i++) {
    // RBAC: an assigned user and a document of that tenant (or of another, to be denied).
    const [u, , t] = assignments[int(assignments.length)]!;
    const docs = docsByTenant.get(r() < 0.7 ? t : tenants[int(s.tenants)]!) ?? [0];
    checks.rbac.push({ user: u, action: ['read', 'write', 'delete'][int(3)]!, resource: `document:d${docs[int(docs.length)]}` });
    // ReBAC, 2 hops: user → group:g#member → folder:f#editor → document:d#editor (half of them a random user).
    const d = int(s.documents);
    const groups = folderEditorGroups.get(parentOf[d]!);
    const group = groups && r() < 0.5 ? groups[int(groups.length)]! : undefined;
    const members = group === undefined ? undefined : membersOf.get(group);
    const member = members ? members[int(members.length)] : undefined;
    checks.rebac.push({ user: member !== undefined ? `u${member}` : `u${int(s.users)}`, action: 'write', resource: `document:d${d}` });
    // ABAC with just-in-time attributes.
    checks.abac.push({ user: { key: `u${int(s.users)}`, attributes: { level: int(6) } }, action: 'share', resource: { type: 'document', key: `d${int(s.documents)}` } });
  }
  return { ops, checks, casbin };
}

const CASBIN_MODEL = `
[request_definition]
r = sub, dom, obj, act, inst
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _, _
g2 = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.obj == p.obj && r.act == p.act && (g(r.sub, p.sub, r.dom) || (r.inst != "" && g2(r.sub, r.inst + p.sub)))
`;

/** Nanosecond latencies. */
function histogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60e9, numberOfSignificantValueDigits: 3 });
}
const us = (h: hdr.Histogram, p: number) => round(h.getValueAtPercentile(p) / 1000, 2);

/**
 * Per-call latency over `rounds` passes, and throughput without a timer around
 * each call. `p99_of_medians` is the p99 over the checks of each check's median
 * time: what the check itself costs, without the scheduling noise of a shared
 * virtual machine that the plain p99 also contains.
 */
function timeEach<T>(items: T[], fn: (x: T) => unknown, rounds: number): { p50: number; p99: number; p99_of_medians: number; perSec: number } {
  const h = histogram();
  const perItem = items.map(() => [] as number[]);
  for (let k = 0; k < rounds; k++) {
    for (let i = 0; i < items.length; i++) {
      const t0 = process.hrtime.bigint();
      fn(items[i]!);
      const ns = Number(process.hrtime.bigint() - t0);
      h.recordValue(ns);
      perItem[i]!.push(ns);
    }
  }
  const medians = perItem.map((xs) => xs.sort((a, b) => a - b)[xs.length >> 1]!).sort((a, b) => a - b);
  const t0 = process.hrtime.bigint();
  let count = 0;
  for (let k = 0; k < rounds; k++) for (const x of items) fn(x), count++;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { p50: us(h, 50), p99: us(h, 99), p99_of_medians: round(medians[Math.floor(medians.length * 0.99)]! / 1000), perSec: Math.round(count / secs) };
}

export async function p7(): Promise<Record<string, unknown>> {
  const perKind = n(2000, 300);
  const prog = new Progress('P7');
  prog.update('building the model', true);
  const model = buildModel(SCALE, perKind);
  const valid = parseOps(model.ops as never);
  if (!valid.ok) throw new Error(valid.error);
  const facts = model.ops.length;

  // In process: load, then check.
  const store = new LocalStore();
  const decider = new Decider(store);
  const t0 = performance.now();
  for (let i = 0, v = 1; i < valid.value.length; i += 5000, v++) store.apply({ version: v, id: `v${v}`, ts: '', ops: valid.value.slice(i, i + 5000) });
  const loadMs = round(performance.now() - t0);
  prog.done(`model: ${facts} facts, indexed in ${loadMs} ms`);

  const normalized = Object.fromEntries(Object.entries(model.checks).map(([k, cs]) => [k, cs.map((c) => {
    const x = normalizeCheck(c);
    if (!x.ok) throw new Error(x.error);
    return x.value;
  })])) as Record<string, Check[]>;
  const inProcess: Record<string, unknown> = {};
  const allowRate: Record<string, number> = {};
  for (const [kind, cs] of Object.entries(normalized)) {
    allowRate[kind] = round(cs.filter((c) => decider.check(c).allow).length / cs.length);
    inProcess[kind] = timeEach(cs, (c) => decider.check(c), n(20, 5));
    prog.done(`factsync in process, ${kind}: ${JSON.stringify(inProcess[kind])} (allowed ${allowRate[kind]})`);
  }

  // Listing questions in process: who may read a document (authorized_users, AuthZEN subject search), which documents a user may read (resource search).
  const docs = normalized.rebac!.slice(0, n(300, 50));
  const listing = (label: string, cs: Check[], list: (c: Check) => { keys: string[] }) => {
    const sizes = cs.map((c) => list(c).keys.length).sort((a, b) => a - b);
    const t = timeEach(cs, list, n(3, 1));
    const r = { p50: t.p50, p99: t.p99, results_p50: sizes[sizes.length >> 1]!, results_max: sizes[sizes.length - 1]! };
    prog.done(`factsync in process, ${label}: ${JSON.stringify(r)}`);
    return r;
  };
  const enumeration = {
    authorized_users_instance: listing('who may write a document (ReBAC + RBAC)', docs, (c) => decider.enumerate.subjects(c, { limit: 1000 })),
    authorized_users_tenant: listing('who may read documents of a tenant (RBAC)', docs.map((c) => ({ ...c, action: 'read', resource: { ...c.resource, key: undefined, tenant: `t${Number(c.resource.key!.slice(1)) % SCALE.tenants}` } })),
      (c) => decider.enumerate.subjects(c, { limit: 1000 })),
    resource_search: listing('which documents a user may read (first 100)', docs.map((c) => ({ ...c, action: 'read', resource: { ...c.resource, key: undefined } })),
      (c) => decider.enumerate.resources(c, { limit: 100 })),
  };

  if (process.env.P7_ONLY === 'inprocess') return { params: { ...SCALE, facts }, allowRate, inProcess, enumeration };

  // Applying one change: a relationship added, then removed (the model stays the same size).
  const applyH = histogram();
  let version = 1_000_000;
  for (let i = 0; i < n(20_000, 2000); i++) {
    const object = `document:d${i % SCALE.documents}`;
    const value = { object, relation: 'viewer', subject: `user:bench${i}` };
    const key = `${object}#viewer@user:bench${i}`;
    for (const op of [{ op: 'upsert', type: 'relationship', key, value }, { op: 'delete', type: 'relationship', key }] as Op[]) {
      const t = process.hrtime.bigint();
      store.apply({ version: ++version, id: 'x', ts: '', ops: [op] });
      applyH.recordValue(Number(process.hrtime.bigint() - t));
    }
  }
  const apply = { p50: us(applyH, 50), p99: us(applyH, 99) };
  prog.done(`factsync apply one change: ${JSON.stringify(apply)}`);

  // Cedar, on the same model and checks; answers compared with ours.
  prog.update('translating the model for Cedar', true);
  const oracle = new CedarOracle(model.ops);
  oracle.prepare('p7');
  const cedar: Record<string, unknown> = {};
  let disagreements = 0;
  for (const [kind, cs] of Object.entries(model.checks)) {
    const sample = cs.slice(0, n(500, 100)).map((c) => (typeof c.resource === 'string' ? { ...c, resource: { type: c.resource.split(':')[0]!, key: c.resource.split(':')[1] } } : c));
    for (let i = 0; i < sample.length; i++) if (oracle.isAllowed(sample[i]!) !== decider.check(normalized[kind]![i]!).allow) disagreements++;
    cedar[kind] = timeEach(sample, (c) => oracle.isAllowed(c), 1);
    prog.done(`cedar-wasm, ${kind}: ${JSON.stringify(cedar[kind])}`);
  }

  // casbin: RBAC with domains, and ReBAC as a role graph (g2).
  prog.update('loading casbin', true);
  const enforcer = await newEnforcer(newModelFromString(CASBIN_MODEL));
  await enforcer.addPolicies(model.casbin.p);
  await enforcer.addNamedGroupingPolicies('g', model.casbin.g);
  await enforcer.addNamedGroupingPolicies('g2', model.casbin.g2);
  const tenantOf = (c: Check) => decider.tenantOf(c);
  const casbinArgs = (c: Check) => [c.user.key, tenantOf(c), c.resource.type, c.action, c.resource.key ? `${c.resource.type}:${c.resource.key}` : ''];
  const casbin: Record<string, unknown> = {};
  let casbinDisagreements = 0;
  for (const kind of ['rbac', 'rebac'] as const) {
    const sample = normalized[kind]!.slice(0, n(500, 100));
    const args = sample.map(casbinArgs);
    for (let i = 0; i < sample.length; i++) if (enforcer.enforceSync(...args[i]!) !== decider.check(sample[i]!).allow) casbinDisagreements++;
    casbin[kind] = timeEach(args, (a) => enforcer.enforceSync(...a), 1);
    prog.done(`casbin, ${kind}: ${JSON.stringify(casbin[kind])}`);
  }

  // Over loopback HTTP: a real agent process that got the model from a real server.
  const h = new Harness();
  let http: Record<string, unknown> = {};
  try {
    await h.startRedis();
    const [server] = await h.servers(1);
    for (let i = 0; i < valid.value.length; i += 5000) {
      const r = await post(`${server!.url}/v1/envs/p7/facts`, { ops: valid.value.slice(i, i + 5000) }, { authorization: `Bearer ${ADMIN}` });
      if (r.status !== 200) throw new Error(`write failed: ${JSON.stringify(r.body)}`);
      prog.update(`writing the model to the server: ${Math.min(i + 5000, facts)}/${facts}`);
    }
    prog.done(`model written (${facts} facts)`);
    const agent = await h.agentProcess({ SERVER_URL: server!.url, AGENT_TOKEN: AGENT, AGENT_ENV: 'p7', AGENT_ID: 'p7' });
    for (let i = 0; i < 600 && (await fetch(`${agent.url}/readyz`).then((r) => r.status, () => 0)) !== 200; i++) await new Promise((r) => setTimeout(r, 100));
    // Warm-up (JIT, and the collection of what loading the snapshot left), over every kind.
    const all = Object.values(model.checks).flat();
    for (let i = 0; i < n(6000, 1000); i++) await post(`${agent.url}/allowed`, all[i % all.length]);
    for (const [kind, cs] of Object.entries(model.checks)) {
      const sample = cs.slice(0, n(2000, 200));
      const hist = histogram();
      for (const c of sample) {
        const t = process.hrtime.bigint();
        const r = await post(`${agent.url}/allowed`, c);
        hist.recordValue(Number(process.hrtime.bigint() - t));
        if (r.status !== 200) throw new Error(`check failed: ${JSON.stringify(r.body)}`);
      }
      // Throughput: 16 clients for a fixed number of checks.
      const started = process.hrtime.bigint();
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < sample.length * 2) await post(`${agent.url}/allowed`, sample[next++ % sample.length]);
      }));
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      http = { ...http, [kind]: { p50: us(hist, 50), p99: us(hist, 99), perSec16: Math.round((sample.length * 2) / secs) } };
      prog.done(`factsync over HTTP, ${kind}: ${JSON.stringify((http as Record<string, unknown>)[kind])}`);
    }
    // AuthZEN beside /allowed, one by one and in batches of 100; the listing routes with their result sizes.
    const toAuthzen = (c: Check) => ({
      subject: { type: 'user', id: c.user.key, properties: c.user.attributes }, action: { name: c.action },
      resource: { type: c.resource.type, id: c.resource.key!, properties: { ...c.resource.attributes, ...(c.resource.tenant ? { tenant: c.resource.tenant } : {}) } },
    });
    const timed = async (items: { url: string; body: unknown }[], check?: (b: any) => number) => {
      const hist = histogram();
      const sizes: number[] = [];
      for (const it of items) {
        const t = process.hrtime.bigint();
        const r = await post(it.url, it.body);
        hist.recordValue(Number(process.hrtime.bigint() - t));
        if (r.status !== 200) throw new Error(`${it.url} failed: ${JSON.stringify(r.body)}`);
        if (check) sizes.push(check(r.body));
      }
      sizes.sort((a, b) => a - b);
      return { p50: us(hist, 50), p99: us(hist, 99), ...(check ? { results_p50: sizes[sizes.length >> 1], results_max: sizes[sizes.length - 1] } : {}) };
    };
    const mixed = Object.values(normalized).flatMap((cs) => cs.slice(0, n(700, 70)));
    const raw = Object.values(model.checks).flatMap((cs) => cs.slice(0, n(700, 70)));
    const authzen: Record<string, unknown> = {
      allowed: await timed(raw.map((c) => ({ url: `${agent.url}/allowed`, body: c }))),
      evaluation: await timed(mixed.map((c) => ({ url: `${agent.url}/access/v1/evaluation`, body: toAuthzen(c) }))),
    };
    const batches = Array.from({ length: Math.floor(mixed.length / 100) }, (_, i) => i * 100);
    authzen.allowed_bulk_100 = await timed(batches.map((i) => ({ url: `${agent.url}/allowed/bulk`, body: raw.slice(i, i + 100) })));
    authzen.evaluations_100 = await timed(batches.map((i) => ({ url: `${agent.url}/access/v1/evaluations`, body: { evaluations: mixed.slice(i, i + 100).map(toAuthzen) } })));
    prog.done(`AuthZEN over HTTP: ${JSON.stringify(authzen)}`);
    const docsHttp = normalized.rebac!.slice(0, n(200, 30));
    const listingHttp = {
      authorized_users: await timed(docsHttp.map((c) => ({ url: `${agent.url}/authorized_users`, body: { action: c.action, resource: { type: c.resource.type, key: c.resource.key } } })),
        (b) => Object.keys(b.users).length),
      search_subject: await timed(docsHttp.map((c) => ({ url: `${agent.url}/access/v1/search/subject`, body: { subject: { type: 'user' }, action: { name: c.action }, resource: { type: c.resource.type, id: c.resource.key } } })),
        (b) => b.results.length),
      search_resource: await timed(docsHttp.map((c) => ({ url: `${agent.url}/access/v1/search/resource`, body: { subject: { type: 'user', id: c.user.key }, action: { name: 'read' }, resource: { type: 'document' } } })),
        (b) => b.results.length),
    };
    prog.done(`listing over HTTP: ${JSON.stringify(listingHttp)}`);
    http = { ...http, authzen, listing: listingHttp };
  } finally {
    await h.close();
  }

  const ratio = Object.fromEntries(['rbac', 'rebac', 'abac'].map((k) => [k, {
    vs_cedar: round((inProcess[k] as { perSec: number }).perSec / (cedar[k] as { perSec: number }).perSec, 1),
    ...(casbin[k] ? { vs_casbin: round((inProcess[k] as { perSec: number }).perSec / (casbin[k] as { perSec: number }).perSec, 1) } : {}),
  }]));
  return {
    params: { ...SCALE, facts, checksPerKind: perKind, cedarPolicies: oracle.policyCount },
    allowRate, inProcess, enumeration, apply, http, cedar, casbin, ratio,
    agreement: { cedarDisagreements: disagreements, casbinDisagreements },
    note: 'µs; perSec = checks per second in one thread; HTTP perSec16 = 16 concurrent keep-alive clients; Cedar gets a preparsed policy set and only the entities each request needs',
  };
}
