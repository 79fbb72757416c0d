import { afterAll, describe, expect, inject, it } from 'vitest';
import { ADMIN, READER, newEnv, startServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { RawAgent } from '../src/raw-agent.js';

/** Invariant 10, least privilege: readers and subscribers of a missing env get an empty stream, never a new env. */
describe.each([['memory', false], ['redis', true]] as const)('readers cannot create envs (%s store)', (_kind, redis) => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('a subscriber hello and HTTP reads of a missing env create nothing; the env appears with its first write, and the subscriber gets it', async () => {
    const server = await startServer(redis ? { redisUrl: inject('redisUrl') } : {});
    closers.push(() => server.close());
    const reader = client(server.url, READER);
    const env = newEnv();

    const sub = await RawAgent.connect(server.url, READER, { type: 'hello', env, agent_id: 'watcher', applied: 0, ack: false });
    closers.push(async () => sub.close());
    await new Promise((r) => setTimeout(r, 100));
    expect(sub.messages[0]).toMatchObject({ type: 'welcome', head: 0, epoch: null });
    expect((await reader.get(`/v1/envs/${env}/head`)).body.version).toBe(0);
    expect((await reader.get(`/v1/envs/${env}/snapshot`)).body.facts).toEqual([]);
    expect((await reader.get(`/v1/envs/${env}/changes?after=0`)).status).toBe(200);
    expect((await reader.get(`/v1/envs/${env}/usage`)).body.mau).toBe(0);
    expect((await client(server.url, ADMIN).get('/v1/envs')).body.envs).not.toContain(env);

    const w = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'd', value: {} }] });
    expect(w.status).toBe(200);
    await sub.waitReceived(1);
    expect(sub.closed).toBeUndefined();
    expect((await client(server.url, ADMIN).get('/v1/envs')).body.envs).toContain(env);
  });
});
