import { afterAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { ADMIN, newEnv, startAgent, startServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/**
 * After a store loss (Redis restarted without its data: a new epoch) versions
 * start over, so version 1 of the new epoch is not "≤ 5" of the old one
 * (invariant 5). Before the agent has resynced, a write through it must not
 * answer `synced: true` or `applied`, and `?at_least` must not be answered from
 * the old epoch's state.
 */
describe('consistency across a store loss', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  /** What a Redis restarted without persistence leaves of this server's keys: nothing. */
  async function loseStore(redisUrl: string, prefix: string): Promise<void> {
    const r = new Redis(redisUrl);
    try {
      for (;;) {
        const keys = await r.keys(`${prefix}*`);
        if (keys.length === 0) return;
        await r.del(...keys);
      }
    } finally {
      r.disconnect();
    }
  }

  /** A server on Redis under a key prefix of its own (what loseStore deletes), and one agent. */
  async function deployment() {
    const redisUrl = inject('redisUrl');
    const prefix = `loss${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`;
    const server = await startServer({ redisUrl, keyPrefix: prefix });
    closers.push(() => server.close());
    const env = newEnv();
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env } });
    closers.push(() => agent.close());
    return { redisUrl, prefix, server, admin: client(server.url, ADMIN), env, agent };
  }

  it('a write through the agent in the new epoch is not synced by the old state; at_least V.EPOCH waits for the resync; an old token is 504 naming its epoch', async () => {
    const { redisUrl, prefix, server, admin, env, agent } = await deployment();
    const api = client(agent.url);
    let old = { version: 0, epoch: '' };
    for (let i = 0; i < 5; i++) old = (await api.post('/v1/facts', { ops: [{ op: 'upsert', type: 'doc', key: `old${i}`, value: {} }] })).body;
    expect(old).toMatchObject({ version: 5, synced: true, applied: 5, epoch: expect.any(String) });

    await loseStore(redisUrl, prefix);

    const fresh = await api.post('/v1/facts', { ops: [{ op: 'upsert', type: 'doc', key: 'new', value: {} }] }, { 'x-wait-timeout': '0' });
    expect(fresh.status).toBe(200);
    expect(fresh.body.version).toBe(1);
    expect(fresh.body.epoch).not.toBe(old.epoch);
    // The state the agent holds is of the old epoch: it applied nothing of this one yet.
    expect(fresh.body).toMatchObject({ synced: false, applied: 0 });

    // The write's token: answered once the agent resynced into the new epoch, and then the fact is there.
    const read = await api.get(`/v1/facts/doc/new?at_least=1.${fresh.body.epoch}`, { 'x-wait-timeout': '20' });
    expect(read.status).toBe(200);
    expect(read.headers.get('x-factsync-version')).toBe('1');
    expect(agent.store.epoch).toBe(fresh.body.epoch);
    expect(agent.store.get('doc', 'old0')).toBeUndefined();

    // The old epoch's version 5 is never reached again: 504, naming both epochs.
    const stale = await api.get(`/v1/facts/doc/new?at_least=5.${old.epoch}`, { 'x-wait-timeout': '0.2' });
    expect(stale.status).toBe(504);
    expect(stale.body).toMatchObject({ error: 'not_synced', epoch: fresh.body.epoch });
    expect(stale.body.message).toContain(`epoch ${old.epoch}`);
    // A bare 5 means 5 of the epoch last heard (the new one), which does not exist yet.
    expect((await api.get('/v1/facts/doc/new?at_least=5', { 'x-wait-timeout': '0.2' })).status).toBe(504);
    expect((await api.get('/v1/facts/doc/new?at_least=1', { 'x-wait-timeout': '0' })).status).toBe(200);
    const checked = await api.post(`/allowed?at_least=1.${fresh.body.epoch}`, { user: 'u', action: 'read', resource: 'doc:new' });
    expect(checked.status).toBe(200);
    expect((await api.get('/v1/facts/doc/new?at_least=nope')).status).toBe(400);
  });

  it('a token of an epoch the agent never heard of waits until the server moves it there, when written past the agent', async () => {
    const { redisUrl, prefix, server, admin, env, agent } = await deployment();
    for (let i = 0; i < 5; i++) await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: `old${i}`, value: {} }] });
    await waitUntil(() => agent.store.version === 5, 'the agent at 5');

    await loseStore(redisUrl, prefix);
    const w = await admin.post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'new', value: { n: 1 } }] });
    expect(w.body).toMatchObject({ version: 1, epoch: expect.any(String) });
    const read = await client(agent.url).get(`/v1/facts/doc/new?at_least=1.${w.body.epoch}`, { 'x-wait-timeout': '20' });
    expect(read.status).toBe(200);
    expect(read.body.value).toEqual({ n: 1 });
  });
});
