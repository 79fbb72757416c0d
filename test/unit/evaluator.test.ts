import { describe, expect, it } from 'vitest';
import { MAX_DERIVATION_NODES, Decider, LocalStore, UsageTracker } from '@factsync/pdp-agent';
import { MAX_USAGE_BATCH, normalizeCheck, parseCondition, parseOps, type CheckRequest, type Op } from '@factsync/shared';

function model() {
  const store = new LocalStore();
  const decider = new Decider(store);
  let version = 0;
  const apply = (...ops: Op[]) => {
    const valid = parseOps(ops as never);
    if (!valid.ok) throw new Error(valid.error);
    store.apply({ version: ++version, id: `v${version}`, ts: '', ops: valid.value });
  };
  const check = (c: CheckRequest) => {
    const n = normalizeCheck(c);
    if (!n.ok) throw new Error(n.error);
    return decider.check(n.value, true);
  };
  return { store, decider, apply, check };
}
const up = (type: string, key: string, value: Record<string, unknown>): Op => ({ op: 'upsert', type, key, value });
const del = (type: string, key: string): Op => ({ op: 'delete', type, key });
const rel = (object: string, relation: string, subject: string) => up('relationship', `${object}#${relation}@${subject}`, { object, relation, subject });

describe('evaluator', () => {
  it('a tuple of one tenant counts only in checks in that tenant; an instance of another tenant lends no attributes', () => {
    const m = model();
    m.apply(
      up('resource', 'document', { actions: ['read'] }),
      up('resource_role', 'document#viewer', { permissions: ['read'] }),
      up('relationship', 'document:1#viewer@user:ann', { object: 'document:1', relation: 'viewer', subject: 'user:ann', tenant: 'acme' }),
      rel('document:2', 'viewer', 'user:ann'),
    );
    expect(m.check({ user: 'ann', action: 'read', resource: { type: 'document', key: '1', tenant: 'acme' } }).allow).toBe(true);
    expect(m.check({ user: 'ann', action: 'read', resource: { type: 'document', key: '1', tenant: 'globex' } }).allow).toBe(false);
    // A tuple of no tenant counts in every tenant.
    expect(m.check({ user: 'ann', action: 'read', resource: { type: 'document', key: '2', tenant: 'globex' } }).allow).toBe(true);
    // Moved to another tenant: it counts there only.
    m.apply(up('relationship', 'document:1#viewer@user:ann', { object: 'document:1', relation: 'viewer', subject: 'user:ann', tenant: 'globex' }));
    expect(m.check({ user: 'ann', action: 'read', resource: { type: 'document', key: '1', tenant: 'acme' } }).allow).toBe(false);
    expect(m.check({ user: 'ann', action: 'read', resource: { type: 'document', key: '1', tenant: 'globex' } }).allow).toBe(true);

    m.apply(
      up('resource_instance', 'document:3', { tenant: 'acme', attributes: { public: true } }),
      up('condition_set', 'anyone', { kind: 'userset', conditions: { allOf: [] } }),
      up('condition_set', 'public_docs', { kind: 'resourceset', resource: 'document', conditions: { 'resource.public': { equals: true } } }),
      up('condition_set_rule', 'anyone/document:read/public_docs', { user_set: 'anyone', permission: 'document:read', resource_set: 'public_docs' }),
    );
    expect(m.check({ user: 'bob', action: 'read', resource: { type: 'document', key: '3' } }).allow).toBe(true);
    expect(m.check({ user: 'bob', action: 'read', resource: { type: 'document', key: '3', tenant: 'acme' } }).allow).toBe(true);
    expect(m.check({ user: 'bob', action: 'read', resource: { type: 'document', key: '3', tenant: 'globex' } }).allow).toBe(false);
  });

  it('a scoped decider refuses (421) a tenant it does not serve, and a check whose instance it cannot place', () => {
    const store = new LocalStore();
    const d = new Decider(store, new Set(['acme']));
    store.apply({ version: 1, id: 'v1', ts: '', ops: [up('resource_instance', 'document:1', { tenant: 'acme' })] });
    const c = (resource: CheckRequest['resource']) => {
      const n = normalizeCheck({ user: 'u', action: 'read', resource });
      if (!n.ok) throw new Error(n.error);
      return n.value;
    };
    expect(d.check(c({ type: 'document', key: '1' })).allow).toBe(false);
    expect(() => d.check(c({ type: 'document', key: '1', tenant: 'globex' }))).toThrow(expect.objectContaining({ code: 'tenant_not_served', status: 421 }));
    expect(() => d.check(c({ type: 'document', key: '9' }))).toThrow(/names no tenant/);
    expect(() => d.check(c({ type: 'document' }))).toThrow(/not "default"/);
  });

  it('cycles of subject sets and derivations end, and still find a holder reachable through them', () => {
    const m = model();
    m.apply(
      up('resource_role', 'group#member', { permissions: ['view'] }),
      up('resource_role', 'folder#editor', { permissions: ['write'], granted_to: [{ role: 'editor', on: 'folder', via: 'parent' }] }),
      // a ⊂ b ⊂ c ⊂ a, and folders that are each other's parent.
      rel('group:a', 'member', 'group:b#member'), rel('group:b', 'member', 'group:c#member'), rel('group:c', 'member', 'group:a#member'),
      rel('folder:x', 'parent', 'folder:y'), rel('folder:y', 'parent', 'folder:x'),
      rel('folder:y', 'editor', 'group:a#member'),
    );
    expect(m.check({ user: 'eve', action: 'view', resource: 'group:a' }).allow).toBe(false);
    expect(m.check({ user: 'eve', action: 'write', resource: 'folder:x' }).allow).toBe(false);
    m.apply(rel('group:c', 'member', 'user:eve'));
    expect(m.check({ user: 'eve', action: 'view', resource: 'group:a' }).allow).toBe(true);
    expect(m.check({ user: 'eve', action: 'write', resource: 'folder:x' })).toMatchObject({
      allow: true, reason: '"eve" holds group:c#member, which gives group:b#member, which gives group:a#member, which gives folder:y#editor, which gives folder:x#editor',
    });
  });

  it('extends cycles between tenant roles end, and each role still grants its own and extended permissions', () => {
    const m = model();
    m.apply(
      up('role', 'a', { permissions: ['doc:read'], extends: ['b'] }),
      up('role', 'b', { permissions: ['doc:write'], extends: ['a'] }),
      up('role_assignment', 'u/a/default', { user: 'u', role: 'a', tenant: 'default' }),
    );
    expect(m.check({ user: 'u', action: 'write', resource: 'doc' }).allow).toBe(true);
    expect(m.check({ user: 'u', action: 'delete', resource: 'doc' }).allow).toBe(false);
    // Changing a role takes effect at once (the derived permissions are recomputed).
    m.apply(up('role', 'b', { permissions: [], extends: ['a'] }));
    expect(m.check({ user: 'u', action: 'write', resource: 'doc' }).allow).toBe(false);
  });

  it(`a derivation chain longer than the search budget (${MAX_DERIVATION_NODES} holdings) is denied, not searched for ever`, () => {
    const m = model();
    const n = MAX_DERIVATION_NODES + 10;
    const ops: Op[] = [up('resource_role', 'group#member', { permissions: ['view'] })];
    for (let i = 0; i < n; i++) ops.push(rel(`group:g${i}`, 'member', `group:g${i + 1}#member`));
    ops.push(rel(`group:g${n}`, 'member', 'user:far'));
    ops.push(rel('group:g100', 'member', 'user:near'));
    m.apply(...ops);
    expect(m.check({ user: 'near', action: 'view', resource: 'group:g0' }).allow).toBe(true);
    expect(m.check({ user: 'far', action: 'view', resource: 'group:g0' }).allow).toBe(false);
    expect(m.check({ user: 'far', action: 'view', resource: `group:g${n - 5}` }).allow).toBe(true);
  });

  it('deleting any fact on the path revokes; a snapshot replaces the indexes', () => {
    const m = model();
    m.apply(
      up('role', 'admin', { permissions: ['doc:read'] }),
      up('role_assignment', 'u/admin/default', { user: 'u', role: 'admin', tenant: 'default' }),
      up('resource_role', 'doc#owner', { permissions: ['read'] }),
      rel('doc:1', 'owner', 'user:v'),
      up('condition_set', 'all-users', { kind: 'userset', conditions: { allOf: [] } }),
      up('condition_set_rule', 'all-users/doc:share/doc', { user_set: 'all-users', permission: 'doc:share', resource_set: 'doc' }),
    );
    expect(m.check({ user: 'u', action: 'read', resource: 'doc:1' }).allow).toBe(true);
    expect(m.check({ user: 'v', action: 'read', resource: 'doc:1' }).allow).toBe(true);
    expect(m.check({ user: 'w', action: 'share', resource: 'doc:1' }).allow).toBe(true);
    m.apply(del('role', 'admin'), del('relationship', 'doc:1#owner@user:v'), del('condition_set', 'all-users'));
    expect(m.check({ user: 'u', action: 'read', resource: 'doc:1' }).allow).toBe(false);
    expect(m.check({ user: 'v', action: 'read', resource: 'doc:1' }).allow).toBe(false);
    expect(m.check({ user: 'w', action: 'share', resource: 'doc:1' }).allow).toBe(false);

    m.store.replace(50, 'e', [{ type: 'role', key: 'admin', value: { permissions: ['doc:read'] } }, { type: 'role_assignment', key: 'x/admin/default', value: { user: 'x', role: 'admin', tenant: 'default' } }], null);
    expect(m.check({ user: 'x', action: 'read', resource: 'doc:1' })).toMatchObject({ allow: true, version: 50 });
    expect(m.check({ user: 'u', action: 'read', resource: 'doc:1' }).allow).toBe(false);
  });

  it('condition operators on strings, numbers, booleans, arrays and references; a missing attribute compares false', () => {
    const m = model();
    const cases: [Record<string, unknown>, Record<string, unknown>, boolean][] = [
      [{ 'user.dept': { equals: 'eng' } }, { dept: 'eng' }, true],
      [{ 'user.dept': { 'not-equals': 'eng' } }, { dept: 'ops' }, true],
      [{ 'user.dept': { 'not-equals': 'eng' } }, {}, false],
      [{ not: { 'user.dept': { equals: 'eng' } } }, {}, true],
      [{ 'user.level': { 'greater-than': 3 } }, { level: 4 }, true],
      [{ 'user.level': { 'greater-than-equals': 4 } }, { level: 4 }, true],
      [{ 'user.level': { 'less-than': 4 } }, { level: 4 }, false],
      [{ 'user.level': { 'less-than-equals': 4 } }, { level: '4' }, false],
      [{ 'user.email': { contains: '@acme.' } }, { email: 'a@acme.io' }, true],
      [{ 'user.active': { equals: true } }, { active: true }, true],
      [{ 'user.active': { equals: true } }, { active: 'true' }, false],
      [{ 'user.tags': { array_contains: 'b' } }, { tags: ['a', 'b'] }, true],
      [{ 'user.tags': { array_superset: ['a', 'b'] } }, { tags: ['a', 'b', 'c'] }, true],
      [{ 'user.tags': { array_subset: ['a', 'b'] } }, { tags: ['a', 'b', 'c'] }, false],
      [{ 'user.tags': { array_intersect: ['c', 'd'] } }, { tags: ['a', 'c'] }, true],
      [{ anyOf: [{ 'user.x': { equals: 1 } }, { 'user.y': { equals: 2 } }] }, { y: 2 }, true],
      [{ 'user.key': { equals: 'subject' } }, {}, true],
      [{ 'user.team': { equals: { ref: 'resource.team' } } }, { team: 'red' }, true],
      [{ 'user.team': { equals: { ref: 'resource.team' } } }, { team: 'blue' }, false],
    ];
    for (const [i, [conditions, attributes, expected]] of cases.entries()) {
      m.apply(
        up('condition_set', `us${i}`, { kind: 'userset', conditions }),
        up('condition_set_rule', `us${i}/thing:act${i}/thing`, { user_set: `us${i}`, permission: `thing:act${i}`, resource_set: 'thing' }),
      );
      const d = m.check({ user: { key: 'subject', attributes }, action: `act${i}`, resource: { type: 'thing', attributes: { team: 'red' } } });
      expect(d.allow, `${JSON.stringify(conditions)} with ${JSON.stringify(attributes)}`).toBe(expected);
    }
  });

  it('the condition grammar refuses what it cannot decide, naming the place', () => {
    const bad: [unknown, RegExp][] = [
      [{ allOf: 'x' }, /conditions\.allOf: expected an array/],
      [{ 'user.a': { equals: [1] } }, /equals: expected a string, number or boolean/],
      [{ 'user.a': { 'greater-than': '3' } }, /expected a number/],
      [{ 'user.a': { equals: 1, 'not-equals': 2 } }, /one operator/],
      [{ 'group.a': { equals: 1 } }, /user\.<name> or resource\.<name>/],
      [{ 'user.a': { equals: { ref: 'x' } } }, /not an attribute reference/],
      [{}, /empty condition/],
      [JSON.parse('{"allOf":['.repeat(20) + '{"user.a":{"equals":1}}' + ']}'.repeat(20)), /deeper than 16/],
    ];
    for (const [json, message] of bad) {
      const r = parseCondition(json);
      expect(r.ok, JSON.stringify(json)).toBe(false);
      if (!r.ok) expect(r.error).toMatch(message);
    }
  });
});

describe('usage tracker', () => {
  it('reports each key once a month, in bounded batches, and resends what was not confirmed', () => {
    let now = Date.UTC(2026, 10, 30, 23, 59);
    const t = new UsageTracker(() => now);
    for (let i = 0; i < MAX_USAGE_BATCH + 5; i++) t.record(`u${i}`);
    t.record('u0');
    const first = t.take(false);
    expect(first.map((b) => b.users.length)).toEqual([MAX_USAGE_BATCH, 5]);
    expect(first.every((b) => b.month === '2026-11')).toBe(true);
    expect(t.take(false)).toEqual([]);
    t.confirm(first[0]!.seq);
    // After a reconnect, the unconfirmed batch goes again.
    expect(t.take(true).map((b) => b.seq)).toEqual([first[1]!.seq]);

    now = Date.UTC(2026, 11, 1, 0, 1);
    t.record('u0');
    const december = t.take(false);
    expect(december).toHaveLength(1);
    expect(december[0]).toMatchObject({ month: '2026-12', users: ['u0'] });
  });
});
