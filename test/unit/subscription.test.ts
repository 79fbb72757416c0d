import { describe, expect, it } from 'vitest';
import { GENESIS_ID, chainId, factInScope, followsHistory, opForScope, parseTenantsList, scopeOf, shareOfChange, tenantOfFact, type Change, type Scope } from '@factsync/shared';

const change = (prev: string, version: number, ops: Change['ops']): Change => {
  const ts = `2026-12-04T00:00:0${version}Z`;
  return { version, ts, ops, id: chainId(prev, version, ts, JSON.stringify(ops)) };
};
const types = (...t: string[]): Scope => scopeOf({ types: t })!;
const tenants = (...t: string[]): Scope => scopeOf({ tenants: t })!;

describe('shares of changes (subscriptions with types)', () => {
  const c1 = change(GENESIS_ID, 1, [{ op: 'upsert', type: 'user', key: 'a', value: {} }, { op: 'upsert', type: 'tenant', key: 't', value: {} }]);
  const c2 = change(c1.id, 2, [{ op: 'delete', type: 'tenant', key: 't' }]);

  it('keep version, id and time, only the types\' ops, and link to the id before', () => {
    const s2 = shareOfChange(c2, c1.id, types('user'));
    expect(s2).toEqual({ version: 2, id: c2.id, prev: c1.id, ts: c2.ts, ops: [] });
    expect(shareOfChange(c1, GENESIS_ID, types('tenant')).ops).toEqual([c1.ops[1]]);
  });

  it('are followed by their link; a link to another id is a history that does not continue', () => {
    expect(followsHistory(c1.id, shareOfChange(c2, c1.id, types('user')))).toBe(true);
    expect(followsHistory('another-id', shareOfChange(c2, c1.id, types('user')))).toBe(false);
    // Whole changes are still checked by their chain id, which covers their ops.
    expect(followsHistory(c1.id, c2)).toBe(true);
    expect(followsHistory(c1.id, { ...c2, ops: [] })).toBe(false);
  });

  it('have one key per scope, whatever the order or repeats', () => {
    expect(types('user', 'tenant', 'user').key).toBe(types('tenant', 'user').key);
    expect(tenants('b', 'a').key).toBe(tenants('a', 'b', 'a').key);
    expect(tenants('a').key).not.toBe(types('a').key);
    expect(scopeOf({})).toBeUndefined();
  });
});

describe('scopes of tenants (scoped agents)', () => {
  const acme = tenants('acme');
  const up = (type: string, key: string, value: Record<string, unknown>) => ({ op: 'upsert' as const, type, key, value });

  it('route a fact by the tenant it names, and facts of no tenant everywhere', () => {
    expect(tenantOfFact('tenant', 'acme', {})).toBe('acme');
    expect(tenantOfFact('role_assignment', 'u/r/acme', { user: 'u', role: 'r', tenant: 'acme' })).toBe('acme');
    expect(tenantOfFact('resource_instance', 'doc:1', { tenant: 'globex' })).toBe('globex');
    expect(tenantOfFact('ticket', 't1', { tenant: 'acme' })).toBe('acme');
    expect(tenantOfFact('ticket', 't1', { owner: 'x' })).toBeUndefined();
    expect(tenantOfFact('user', 'u', {})).toBeUndefined();
    expect(tenantOfFact('relationship', 'doc:1#owner@user:u', { object: 'doc:1', relation: 'owner', subject: 'user:u' })).toBeUndefined();
    // A well-known type with a `tenant` field of its own meaning (a role's) is policy: everywhere.
    expect(tenantOfFact('role', 'viewer', { permissions: [], tenant: 'acme' })).toBeUndefined();
    expect(factInScope({ type: 'user', key: 'u', value: {} }, acme)).toBe(true);
    expect(factInScope({ type: 'resource_instance', key: 'doc:1', value: { tenant: 'globex' } }, acme)).toBe(false);
    expect(factInScope({ type: 'resource_instance', key: 'doc:1', value: { tenant: 'acme' } }, acme)).toBe(true);
    expect(factInScope({ type: 'user', key: 'u', value: {} }, scopeOf({ tenants: ['acme'], types: ['tenant'] })!)).toBe(false);
  });

  it('send an upsert that may have moved a fact away as a delete to the other scopes', () => {
    const moved = up('resource_instance', 'doc:1', { tenant: 'globex' });
    expect(opForScope(moved, acme)).toEqual({ op: 'delete', type: 'resource_instance', key: 'doc:1' });
    expect(opForScope(moved, tenants('globex'))).toBe(moved);
    // A role assignment's tenant is in its key: it cannot move, so other scopes get nothing.
    expect(opForScope(up('role_assignment', 'u/r/globex', { user: 'u', role: 'r', tenant: 'globex' }), acme)).toBeUndefined();
  });

  it('send a delete by the tenant of its key, and everywhere when the key does not say', () => {
    expect(opForScope({ op: 'delete', type: 'role_assignment', key: 'u/r/globex' }, acme)).toBeUndefined();
    expect(opForScope({ op: 'delete', type: 'role_assignment', key: 'u/r/acme' }, acme)).toBeDefined();
    expect(opForScope({ op: 'delete', type: 'tenant', key: 'globex' }, acme)).toBeUndefined();
    expect(opForScope({ op: 'delete', type: 'resource_instance', key: 'doc:1' }, acme)).toBeDefined();
  });

  it('with the store\'s record of where a fact was (Change.was), a delete or a move reaches only the scope that held it', () => {
    const del = { op: 'delete' as const, type: 'resource_instance', key: 'doc:g' };
    // It was globex's: acme never hears its key.
    expect(opForScope(del, acme, { tenant: 'globex' })).toBeUndefined();
    expect(opForScope(del, tenants('globex'), { tenant: 'globex' })).toEqual(del);
    // It named no tenant (every scope held it), or there was none (no scope held it).
    expect(opForScope(del, acme, { tenant: null })).toEqual(del);
    expect(opForScope(del, acme, 'absent')).toBeUndefined();
    // A move from acme to globex: acme gets the delete, initech nothing.
    const moved = up('resource_instance', 'doc:1', { tenant: 'globex' });
    expect(opForScope(moved, acme, { tenant: 'acme' })).toEqual({ op: 'delete', type: 'resource_instance', key: 'doc:1' });
    expect(opForScope(moved, tenants('initech'), { tenant: 'acme' })).toBeUndefined();
    expect(opForScope(moved, tenants('initech'), 'absent')).toBeUndefined();
    const change: Change = { version: 2, id: 'x', ts: 't', was: { 0: 'globex' }, ops: [del, { op: 'delete', type: 'user', key: 'u' }] };
    expect(shareOfChange(change, 'p', acme).ops).toEqual([{ op: 'delete', type: 'user', key: 'u' }]);
    expect(shareOfChange(change, 'p', acme)).not.toHaveProperty('was');
  });

  it('parse a tenants list, refusing what is not one', () => {
    expect(parseTenantsList(' acme, globex ,acme')).toEqual({ ok: true, value: ['acme', 'globex'] });
    expect(parseTenantsList(',').ok).toBe(false);
    expect(parseTenantsList('a b').ok).toBe(false);
  });
});
