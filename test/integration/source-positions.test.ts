import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ADMIN, READER, newEnv, startAgent, startServer, type RunningServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/** X-Source and X-Source-Position over HTTP: recorded with the write, applied once per position, listed, and measured. */
describe.each(['memory', 'redis'])('source positions over HTTP (%s store)', (kind) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(kind === 'redis' ? { redisUrl: inject('redisUrl') } : {});
  });
  afterAll(async () => {
    await server?.close();
  });
  const user = (key: string) => ({ ops: [{ op: 'upsert', type: 'user', key, value: {} }] });
  const at = (position: string) => ({ 'x-source': 'crm', 'x-source-position': position });

  it('a position is applied once, recorded with its write, and listed', async () => {
    const env = newEnv();
    const api = client(server.url, ADMIN);
    const first = await api.post(`/v1/envs/${env}/facts`, user('u1'), at('0000000000000100.0000'));
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ version: 1, epoch: expect.any(String) });
    const again = await api.post(`/v1/envs/${env}/facts`, user('u2'), at('0000000000000100.0000'));
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ version: 1, epoch: first.body.epoch, replayed: true });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((await api.get(`/v1/envs/${env}/facts/user/u2`)).status).toBe(404);
    // A heartbeat: no ops, the position moves, no version.
    const beat = await api.post(`/v1/envs/${env}/facts`, { ops: [] }, at('0000000000000200.0000'));
    expect(beat.body).toEqual({ version: 1, epoch: first.body.epoch });
    expect((await api.get(`/v1/envs/${env}/head`)).body.version).toBe(1);
    const listed = await client(server.url, READER).get(`/v1/envs/${env}/sources`);
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual([{ name: 'crm', position: '0000000000000200.0000', version: 1, updated_at: expect.any(String) }]);
    // The lag metric reads it.
    await waitUntil(async () => /factsync_source_lag_seconds\{env="[^"]+",source="crm"\} \d/.test((await client(server.url).get('/metrics')).body as string), 'the source lag metric', 15_000, 250);
  });

  it('mistakes are 400s that say what to send', async () => {
    const env = newEnv();
    const api = client(server.url, ADMIN);
    const cases: [Record<string, string>, unknown, RegExp][] = [
      [{ 'x-source': 'crm' }, user('u'), /send X-Source and X-Source-Position together/],
      [{ ...at('1'), 'idempotency-key': 'k' }, user('u'), /made idempotent by its X-Source-Position; send no Idempotency-Key/],
      [{ 'x-source': 'no spaces', 'x-source-position': '1' }, user('u'), /X-Source: source name "no spaces" is not valid/],
      [at('has space'), user('u'), /X-Source-Position "has space" is not valid/],
      [{}, { ops: [] }, /ops is empty/],
    ];
    for (const [headers, body, message] of cases) {
      const r = await api.post(`/v1/envs/${env}/facts`, body, headers);
      expect(r.status, JSON.stringify(headers)).toBe(400);
      expect(r.body.message).toMatch(message);
    }
    const batch = await api.post(`/v1/envs/${env}/writes`, { writes: [user('u')] }, at('1'));
    expect(batch.status).toBe(400);
    expect(batch.body.message).toMatch(/a batch takes none/);
  });

  it('an agent refuses X-Source: sources write to the server', async () => {
    const agent = await startAgent(server.url, { env: { AGENT_ENV: newEnv() } });
    try {
      await waitUntil(async () => (await fetch(`${agent.url}/readyz`)).status === 200, 'agent ready');
      const r = await client(agent.url).post('/v1/facts', user('u'), at('1'));
      expect(r.status).toBe(400);
      expect(r.body.message).toMatch(/a source writes to the server/);
    } finally {
      await agent.close();
    }
  });
});
