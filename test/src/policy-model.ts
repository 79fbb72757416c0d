import type { CheckRequest, Op } from '@factsync/shared';

/**
 * Random authorization models for the differential test against Cedar: tenant
 * roles with `extends`, resource roles with `extends` and `granted_to`,
 * subject sets, resource instances in tenants, attributes and condition sets,
 * and random checks over them (with just-in-time attributes). Graphs are
 * layered (a group contains only lower groups, roles extend only lower roles)
 * because Cedar refuses cyclic entity hierarchies; cycles are unit-tested.
 */

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Model { ops: Op[]; checks: CheckRequest[] }

export const TYPES: Record<string, string[]> = { document: ['read', 'write', 'delete'], folder: ['read', 'write'], group: ['view'] };
export const TENANTS = ['default', 't1', 't2'];
export const USER_ATTRS = { dept: 'string', level: 'integer', tags: 'string_array', active: 'boolean' } as const;
export const RESOURCE_ATTRS = { classification: 'string', size: 'integer', labels: 'string_array', public: 'boolean' } as const;
const STRINGS = ['eng', 'sales', 'ops'];
const LABELS = ['a', 'b', 'c'];

export function randomModel(seed: number, nChecks: number): Model {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => r() < p;
  const subset = <T>(xs: readonly T[], p = 0.4) => xs.filter(() => chance(p));
  const ops: Op[] = [];
  const up = (type: string, key: string, value: Record<string, unknown>) => ops.push({ op: 'upsert', type, key, value });

  const users = Array.from({ length: 2 + int(5) }, (_, i) => `u${i}`);
  const attrValue = (kind: string): unknown => {
    switch (kind) {
      case 'string': return pick(STRINGS);
      case 'integer': return int(6);
      case 'boolean': return chance(0.5);
      default: return subset(LABELS, 0.5);
    }
  };
  const attrs = (schema: Record<string, string>) => Object.fromEntries(Object.entries(schema).filter(() => chance(0.7)).map(([k, kind]) => [k, attrValue(kind)]));

  for (const u of users) if (chance(0.85)) up('user', u, { attributes: attrs(USER_ATTRS) });
  for (const t of TENANTS) up('tenant', t, {});
  for (const [type, actions] of Object.entries(TYPES)) up('resource', type, { actions });
  const permissions = Object.entries(TYPES).flatMap(([t, as]) => as.map((a) => `${t}:${a}`));

  // Tenant roles: r_i extends only r_j with j < i.
  const roles = Array.from({ length: 1 + int(4) }, (_, i) => `r${i}`);
  roles.forEach((role, i) => up('role', role, { permissions: subset(permissions, 0.25), extends: subset(roles.slice(0, i), 0.4) }));
  for (const u of users) for (const t of TENANTS) for (const role of roles) {
    if (chance(0.15)) up('role_assignment', `${u}/${role}/${t}`, { user: u, role, tenant: t });
  }

  // Resource roles: viewer < editor < owner per type; documents derive from their parent folder.
  const rroles = ['viewer', 'editor', 'owner'];
  for (const [type, actions] of Object.entries(TYPES)) {
    rroles.forEach((role, i) => {
      const granted = type === 'document' && chance(0.7) ? [{ role: pick(rroles), on: 'folder', via: 'parent' }] : [];
      up('resource_role', `${type}#${role}`, { permissions: subset(actions, 0.5), extends: subset(rroles.slice(0, i), 0.5), granted_to: granted });
    });
  }

  const instances: Record<string, string[]> = {
    document: Array.from({ length: 1 + int(4) }, (_, i) => `document:d${i}`),
    folder: Array.from({ length: 1 + int(3) }, (_, i) => `folder:f${i}`),
    group: Array.from({ length: 1 + int(3) }, (_, i) => `group:g${i}`),
  };
  for (const list of Object.values(instances)) for (const o of list) {
    if (chance(0.7)) up('resource_instance', o, { tenant: pick(TENANTS), attributes: attrs(RESOURCE_ATTRS) });
  }
  const rel = (object: string, relation: string, subject: string) => up('relationship', `${object}#${relation}@${subject}`, { object, relation, subject });
  for (const d of instances.document!) if (chance(0.7)) rel(d, 'parent', pick(instances.folder!));
  instances.group!.forEach((g, i) => {
    for (const u of users) if (chance(0.3)) rel(g, 'member', `user:${u}`);
    // A group contains only lower groups: no cycle.
    for (const h of instances.group!.slice(0, i)) if (chance(0.3)) rel(g, 'member', `${h}#member`);
  });
  for (const type of ['document', 'folder']) for (const o of instances[type]!) for (const role of rroles) {
    for (const u of users) if (chance(0.12)) rel(o, role, `user:${u}`);
    if (chance(0.2)) rel(o, role, `${pick(instances.group!)}#member`);
  }
  // Attribute facts override instance and user attributes.
  for (const u of users) if (chance(0.2)) up('attribute', `user:${u}$level`, { entity: `user:${u}`, attribute: 'level', kind: 'integer', value: int(6) });
  for (const d of instances.document!) if (chance(0.2)) up('attribute', `${d}$public`, { entity: d, attribute: 'public', kind: 'boolean', value: chance(0.5) });

  // Condition sets and rules.
  const cond = (side: 'user' | 'resource', depth: number): Record<string, unknown> => {
    const schema: Record<string, string> = side === 'user' ? USER_ATTRS : RESOURCE_ATTRS;
    if (depth < 2 && chance(0.4)) {
      const k = pick(['allOf', 'anyOf', 'not']);
      if (k === 'not') return { not: cond(side, depth + 1) };
      return { [k]: Array.from({ length: int(3) + (k === 'anyOf' ? 1 : 0) }, () => cond(side, depth + 1)) };
    }
    const [name, kind] = pick(Object.entries(schema));
    const path = `${side}.${name}`;
    switch (kind) {
      case 'string':
        if (side === 'resource' && chance(0.2)) return { [path]: { equals: { ref: 'user.dept' } } };
        return { [path]: { [pick(['equals', 'not-equals', 'contains'])]: pick(STRINGS).slice(0, chance(0.3) ? 2 : 5) } };
      case 'integer': return { [path]: { [pick(['equals', 'not-equals', 'less-than', 'less-than-equals', 'greater-than', 'greater-than-equals'])]: int(6) } };
      case 'boolean': return { [path]: { [pick(['equals', 'not-equals'])]: chance(0.5) } };
      default:
        if (chance(0.3)) return { [path]: { array_contains: pick(LABELS) } };
        return { [path]: { [pick(['array_subset', 'array_superset', 'array_intersect'])]: subset(LABELS, 0.5) } };
    }
  };
  const usersets = ['us0', 'us1', 'us2'].filter(() => chance(0.8));
  for (const k of usersets) up('condition_set', k, { kind: 'userset', conditions: { allOf: [cond('user', 0)] } });
  const resourcesets = ['rs0', 'rs1'].filter(() => chance(0.8));
  const rsType: Record<string, string> = {};
  for (const k of resourcesets) {
    rsType[k] = pick(Object.keys(TYPES));
    up('condition_set', k, { kind: 'resourceset', resource: rsType[k], conditions: cond('resource', 0) });
  }
  for (let i = 0; i < 4; i++) {
    const us = pick([...usersets, 'missing']);
    const rs = pick([...resourcesets, ...Object.keys(TYPES)]);
    const type = rsType[rs] ?? (TYPES[rs] ? rs : pick(Object.keys(TYPES)));
    const permission = `${chance(0.9) ? type : pick(Object.keys(TYPES))}:${pick(TYPES[type]!)}`;
    if (chance(0.8)) up('condition_set_rule', `${us}/${permission}/${rs}`, { user_set: us, permission, resource_set: rs });
  }

  const checks: CheckRequest[] = [];
  for (let i = 0; i < nChecks; i++) {
    const type = pick(Object.keys(TYPES));
    const action = chance(0.95) ? pick(TYPES[type]!) : 'nope';
    const userKey = chance(0.9) ? pick(users) : 'stranger';
    const user: CheckRequest['user'] = chance(0.3) ? { key: userKey, attributes: attrs(USER_ATTRS) } : userKey;
    const key = chance(0.85) ? pick(instances[type]!).split(':')[1] : undefined;
    const resource: CheckRequest['resource'] = {
      type, ...(key !== undefined ? { key } : {}),
      ...(chance(0.3) ? { tenant: pick(TENANTS) } : {}),
      ...(chance(0.25) ? { attributes: attrs(RESOURCE_ATTRS) } : {}),
    };
    checks.push({ user, action, resource });
  }
  return { ops, checks };
}
