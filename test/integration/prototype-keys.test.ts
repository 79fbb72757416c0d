import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { client, upsert } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/**
 * Names that are also properties of every JavaScript object. Each is data
 * like any other: a type, a key, a user, a tenant, a role or a relation called
 * so is stored, read, listed and decided, never a 500 and never missing.
 */
const NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];
const TYPES = ['constructor', 'prototype', 'tostring', 'hasownproperty', 'valueof'];
/** As a property name inside a value, `__proto__` is refused at the door (secure JSON parsing): the others are kept. */
const PROPERTY = (n: string) => (n === '__proto__' ? 'proto' : n);

describe('names of Object.prototype are plain data', () => {
  let server: RunningServer;
  let agent: Awaited<ReturnType<typeof startAgent>>;
  let env: string;
  let head = 0;
  beforeAll(async () => {
    server = await startServer();
    env = newEnv();
    agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    const ops = [
      upsert('resource', 'doc', { actions: ['read'] }),
      ...TYPES.flatMap((t) => NAMES.map((k) => upsert(t, k, { [PROPERTY(k)]: k }))),
      ...NAMES.map((n) => upsert('role', n, { permissions: ['doc:read'] })),
      ...NAMES.map((n) => upsert('tenant', n, { name: n, attributes: { [PROPERTY(n)]: 1 } })),
      ...NAMES.map((n) => upsert('user', n, { email: `${n.replace(/_/g, 'x')}@x.io`, attributes: { [PROPERTY(n)]: n } })),
      ...NAMES.map((n) => upsert('role_assignment', `${n}/${n}/${n}`, { user: n, role: n, tenant: n })),
      ...NAMES.map((n) => upsert('resource_instance', `doc:${n}`, { tenant: n })),
      ...NAMES.map((n) => upsert('relationship', `doc:${n}#${n}@user:${n}`, { object: `doc:${n}`, relation: n, subject: `user:${n}` })),
    ];
    // A property named __proto__ inside a body is refused (with a sentence that says so); as data, the name is fine.
    const poisoned = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, '{"ops":[{"op":"upsert","type":"doc","key":"k","value":{"__proto__":{"polluted":true}}}]}', { 'content-type': 'application/json' });
    expect(poisoned.status).toBe(400);
    expect(poisoned.body.message).toMatch(/property named "__proto__".*prototype pollution/);
    const w = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops });
    expect(w.status, JSON.stringify(w.body)).toBe(200);
    head = w.body.version;
    await waitUntil(() => agent.store.version === head, 'the agent at the write');
  });
  afterAll(async () => {
    await agent?.close();
    await server?.close();
  });

  it('every fact is read back, by key and in lists, on the server and on the agent', async () => {
    const admin = client(server.url, ADMIN);
    const api = client(agent.url);
    for (const t of TYPES) {
      for (const k of NAMES) {
        const onAgent = await api.get(`/v1/facts/${t}/${encodeURIComponent(k)}`);
        expect(onAgent.status, `${t} ${k}`).toBe(200);
        expect(onAgent.body.value[PROPERTY(k)]).toBe(k);
      }
      const listed = await api.get(`/v1/facts?type=${t}&limit=100`);
      expect(listed.body.facts.map((f: { key: string }) => f.key).sort()).toEqual([...NAMES].sort());
      const onServer = await admin.get(`/v1/envs/${env}/facts?type=${t}`);
      expect(onServer.status).toBe(200);
    }
    const snap = await admin.get(`/v1/envs/${env}/snapshot`);
    expect(snap.body.facts.filter((f: { type: string }) => TYPES.includes(f.type))).toHaveLength(TYPES.length * NAMES.length);
  });

  it('checks, permission lists and who-may lists decide them like any name', async () => {
    const api = client(agent.url);
    for (const n of NAMES) {
      const byRole = await api.post('/allowed', { user: n, action: 'read', resource: { type: 'doc', tenant: n } });
      expect(byRole.status, n).toBe(200);
      expect(byRole.body.allow, `${n} by its role in tenant ${n}`).toBe(true);
      expect((await api.post('/allowed', { user: n, action: 'read', resource: { type: 'doc', tenant: 'default' } })).body.allow).toBe(false);
      const perms = await api.post('/user-permissions', { user: n, tenants: [n] });
      expect(perms.status).toBe(200);
      expect(perms.body[`__tenant:${n}`]?.permissions).toEqual(['doc:read']);
      const who = await api.post('/authorized_users', { action: 'read', resource: { type: 'doc', tenant: n } });
      expect(who.status).toBe(200);
      expect(Object.keys(who.body.users), `authorized_users in tenant ${n}`).toEqual([n]);
      expect(Object.getPrototypeOf(who.body.users)).toBe(Object.prototype);
      const tenants = await api.post('/user-tenants', { user: n });
      expect(tenants.body.map((t: { key: string }) => t.key)).toContain(n);
    }
    const search = await api.post('/access/v1/search/subject', { subject: { type: 'user' }, action: { name: 'read' }, resource: { type: 'doc', id: '__proto__' } });
    expect(search.status).toBe(200);
    expect(search.body.results.map((r: { id: string }) => r.id)).toEqual(['__proto__']);
  });
});
