import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ADMIN, AGENT, OTHER_ENV_AGENT, READER, WRITER, newEnv, startServer, type RunningServer } from '../src/inproc.js';
import { client, del, upsert } from '../src/http.js';
import { RawAgent } from '../src/raw-agent.js';
import { PRODUCER_WINDOW } from '@factsync/shared';

describe.each(['memory', 'redis'])('server HTTP API (%s store)', (kind) => {
  let server: RunningServer;
  let admin: ReturnType<typeof client>;
  beforeAll(async () => {
    server = await startServer({
      ...(kind === 'redis' ? { redisUrl: inject('redisUrl') } : {}),
      env: { LOG_RETENTION: '5', BODY_LIMIT_BYTES: '65536', MAX_OPS_PER_WRITE: '100' },
    });
    admin = client(server.url, ADMIN);
  });
  afterAll(() => server.close());

  it('writes, then serves head, snapshot and changes', async () => {
    const env = newEnv();
    const w1 = await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('user', 'a@x.io', { email: 'a@x.io' }), upsert('doc', 'd1', { n: 1 })] });
    expect(w1).toMatchObject({ status: 200, body: { version: 1 } });
    const w2 = await admin.post(`/v1/envs/${env}/facts`, { ops: [del('doc', 'd1')] });
    expect(w2.body).toEqual({ version: 2, epoch: expect.any(String) });
    expect((await admin.get(`/v1/envs/${env}/head`)).body).toMatchObject({ version: 2 });
    const snap = await admin.get(`/v1/envs/${env}/snapshot`);
    expect(snap.body).toMatchObject({ version: 2, facts: [{ type: 'user', key: 'a@x.io', value: { email: 'a@x.io' } }] });
    const changes = await admin.get(`/v1/envs/${env}/changes?after=1`);
    expect(changes.body).toMatchObject({ head: 2, changes: [{ version: 2, ops: [del('doc', 'd1')] }] });
    expect(typeof changes.body.changes[0].ts).toBe('string');
    expect((await admin.get(`/v1/envs/${newEnv()}/head`)).body).toMatchObject({ version: 0 });
  });

  it('answers 410 log_truncated when the log no longer reaches back', async () => {
    const env = newEnv();
    for (let i = 0; i < 8; i++) await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('t', `k${i}`, {})] });
    const r = await admin.get(`/v1/envs/${env}/changes?after=1`);
    expect(r.status).toBe(410);
    expect(r.body).toMatchObject({ error: 'log_truncated', head: 8 });
    expect(r.body.message).toMatch(/snapshot/);
    expect((await admin.get(`/v1/envs/${env}/changes?after=3&limit=2`)).body.changes.map((c: { version: number }) => c.version)).toEqual([4, 5]);
  });

  it('an idempotent retry returns the same version and applies once', async () => {
    const env = newEnv();
    const body = { ops: [upsert('counter', 'c', { n: 1 })] };
    const a = await admin.post(`/v1/envs/${env}/facts`, body, { 'idempotency-key': 'retry-1' });
    const b = await admin.post(`/v1/envs/${env}/facts`, body, { 'idempotency-key': 'retry-1' });
    expect(a.body.version).toBe(1);
    expect(b.body.version).toBe(1);
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect((await admin.get(`/v1/envs/${env}/head`)).body.version).toBe(1);
    const bad = await admin.post(`/v1/envs/${env}/facts`, body, { 'idempotency-key': 'has space' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/Idempotency-Key/);
  });

  it('producer sequences over HTTP: a retry is replayed, a reuse is 422, an old number 409, bad headers 400 saying which', async () => {
    const env = newEnv();
    const body = (n: number) => ({ ops: [upsert('counter', 'c', { n })] });
    const p = (seq: string, id = 'agent-x.b00t') => ({ 'x-producer-id': id, 'x-producer-seq': seq });
    expect((await admin.post(`/v1/envs/${env}/facts`, body(1), p('1'))).body.version).toBe(1);
    const again = await admin.post(`/v1/envs/${env}/facts`, body(1), p('1'));
    expect(again.body.version).toBe(1);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const reused = await admin.post(`/v1/envs/${env}/facts`, body(2), p('1'));
    expect(reused.status).toBe(422);
    expect(reused.body.message).toMatch(/X-Producer-Seq 1 of producer "agent-x.b00t"/);
    expect((await admin.post(`/v1/envs/${env}/facts`, body(3), p(String(2 + PRODUCER_WINDOW)))).body.version).toBe(2);
    const old = await admin.post(`/v1/envs/${env}/facts`, body(4), p('2'));
    expect(old.status).toBe(409);
    expect(old.body).toMatchObject({ error: 'producer_seq_too_old' });
    expect(old.body.message).toMatch(/within 128 sequence numbers/);
    const cases: [Record<string, string>, RegExp][] = [
      [{ 'x-producer-id': 'a' }, /X-Producer-Id and X-Producer-Seq together/],
      [{ 'x-producer-seq': '1' }, /X-Producer-Id and X-Producer-Seq together/],
      [p('0'), /X-Producer-Seq "0" is not valid/],
      [p('1.5'), /X-Producer-Seq "1.5" is not valid/],
      [p('1', 'has space'), /X-Producer-Id must be/],
      [{ ...p('3'), 'idempotency-key': 'k' }, /either Idempotency-Key or X-Producer-Id/],
    ];
    for (const [headers, message] of cases) {
      const r = await admin.post(`/v1/envs/${env}/facts`, body(5), headers);
      expect(r.status, JSON.stringify(headers)).toBe(400);
      expect(r.body.message).toMatch(message);
    }
    expect((await admin.get(`/v1/envs/${env}/head`)).body.version).toBe(2);
  });

  it('a producer batch (POST /writes): each write its own version in order, a retried batch replayed write by write, one bad write refused alone', async () => {
    const env = newEnv();
    const h = { 'x-producer-id': 'agent-b.1', 'x-producer-seq': '10' };
    const batch = { writes: [{ ops: [upsert('doc', 'a', {})] }, { ops: [upsert('user', 'b', { not_a_user_field: 1 })] }, { ops: [upsert('doc', 'c', {}), del('doc', 'a')] }] };
    const r = await admin.post(`/v1/envs/${env}/writes`, batch, h);
    expect(r.status).toBe(200);
    expect(r.body.results[0]).toEqual({ version: 1, epoch: expect.any(String) });
    expect(r.body.results[1]).toMatchObject({ error: 'invalid_request' });
    expect(r.body.results[1].message).toMatch(/^writes\[1\]: ops\[0\]/);
    expect(r.body.results[2]).toEqual({ version: 2, epoch: expect.any(String) });
    // The same batch again (a lost answer): the written ones are replayed, nothing is written twice.
    const again = await admin.post(`/v1/envs/${env}/writes`, batch, h);
    expect(again.body.results.map((x: { version?: number; replayed?: boolean }) => [x.version, x.replayed])).toEqual([[1, true], [undefined, undefined], [2, true]]);
    expect((await admin.get(`/v1/envs/${env}/head`)).body.version).toBe(2);
    // Numbers are by position: write 1 of a batch from 12 is number 13, already used by "c".
    const shifted = await admin.post(`/v1/envs/${env}/writes`, { writes: [{ ops: [upsert('doc', 'd', {})] }, { ops: [upsert('doc', 'e', {})] }] }, { ...h, 'x-producer-seq': '11' });
    expect(shifted.body.results[0]).toEqual({ version: 3, epoch: expect.any(String) });
    expect(shifted.body.results[1]).toMatchObject({ error: 'idempotency_key_reused' });
    const bad: [unknown, Record<string, string>, number, RegExp][] = [
      [batch, { ...h, 'x-wait-for': 'all' }, 400, /answered without waiting/],
      [batch, { 'idempotency-key': 'k' }, 400, /not an Idempotency-Key/],
      [{ writes: [] }, h, 400, /writes/],
      [{ writes: Array.from({ length: 257 }, () => ({ ops: [upsert('doc', 'x', {})] })) }, h, 400, /writes/],
      [{ writes: Array.from({ length: 3 }, () => ({ ops: Array.from({ length: 40 }, (_, i) => upsert('doc', `x${i}`, {})) })) }, h, 413, /at most 100 ops in all/],
    ];
    for (const [body, headers, status, message] of bad) {
      const x = await admin.post(`/v1/envs/${env}/writes`, body, headers);
      expect(x.status, JSON.stringify(headers)).toBe(status);
      expect(x.body.message).toMatch(message);
    }
    expect((await client(server.url, READER).post(`/v1/envs/${env}/writes`, batch, h)).status).toBe(403);
    expect((await admin.get(`/v1/envs/${env}/head`)).body.version).toBe(3);
  });

  it('rejects invalid writes with 400/413 and a message that says what is wrong', async () => {
    const env = newEnv();
    const cases: [unknown, number, RegExp][] = [
      [{ ops: [upsert('User', 'k', {})] }, 400, /ops\[0\]\.type is not valid: lower-case letter/],
      [{ ops: [{ op: 'upsert', type: 'user', value: {} }] }, 400, /missing required field "key"/],
      [{ ops: [{ op: 'upsert', type: 'user', key: '', value: {} }] }, 400, /ops\[0\]\.key/],
      [{ ops: [{ op: 'upsert', type: 'doc', key: 'k', value: 'not an object' }] }, 400, /ops\[0\]\.value must be object/],
      [{ ops: [{ op: 'upsert', type: 'doc', key: 'k', value: [1] }] }, 400, /ops\[0\]\.value must be object/],
      [{ ops: [{ op: 'replace', type: 'doc', key: 'k', value: {} }] }, 400, /ops\[0\]\.op must be "upsert" or "delete"/],
      [{ ops: [] }, 400, /ops is empty: a write carries at least one op/],
      [{ ops: [upsert('doc', 'k', {})], extra: 1 }, 400, /unknown field "extra"/],
      [{ ops: [upsert('user', 'k', { email: 42 })] }, 400, /value\.email: expected string/],
      [{ ops: [upsert('doc', 'k'.repeat(513), {})] }, 400, /key is 513 bytes of UTF-8; a key is at most 512 bytes/],
      [{ ops: [upsert('doc', 'é'.repeat(257), {})] }, 400, /key is 514 bytes of UTF-8/],
      [{ ops: Array.from({ length: 101 }, (_, i) => upsert('doc', `k${i}`, {})) }, 413, /at most 100 ops/],
      [{ ops: [upsert('doc', 'k', { blob: 'x'.repeat(70_000) })] }, 413, /BODY_LIMIT_BYTES/],
      ['{"ops": [', 400, /not valid JSON/],
      [`{"ops":[{"op":"upsert","type":"doc","key":"k","value":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}]}`, 400, /nests deeper than 32 levels/],
      [`{"ops":[{"op":"upsert","type":"doc","key":"k","value":{"a":${'['.repeat(3000)}${']'.repeat(3000)}}}]}`, 400, /nests deeper than 32 levels/],
    ];
    for (const [body, status, re] of cases) {
      const r = await admin.post(`/v1/envs/${env}/facts`, body, typeof body === 'string' ? { 'content-type': 'application/json' } : {});
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(r.body.error).toBe(status === 413 ? 'payload_too_large' : 'invalid_request');
      expect(r.body.message, JSON.stringify(body).slice(0, 80)).toMatch(re);
    }
    const badEnv = await admin.post('/v1/envs/bad%20env!/facts', { ops: [upsert('doc', 'k', {})] });
    expect(badEnv.status).toBe(400);
    expect(badEnv.body.message).toMatch(/env "bad env!" is not valid/);
    const text = await admin.call('POST', `/v1/envs/${env}/facts`, 'ops', { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    expect(text.body).toMatchObject({ error: 'unsupported_media_type' });
    expect((await admin.get(`/v1/envs/${env}/head`)).body.version).toBe(0); // nothing was written
  });

  it('enforces tokens: 401 without or with an unknown one, 403 for the wrong env or role', async () => {
    const env = newEnv();
    const w = { ops: [upsert('doc', 'k', {})] };
    expect((await client(server.url).post(`/v1/envs/${env}/facts`, w)).status).toBe(401);
    expect((await client(server.url, 'nope').get(`/v1/envs/${env}/head`)).body).toMatchObject({ error: 'unauthorized' });
    expect((await client(server.url, OTHER_ENV_AGENT).get(`/v1/envs/${env}/head`)).status).toBe(403);
    expect((await client(server.url, OTHER_ENV_AGENT).get('/v1/envs/other/head')).status).toBe(200);
    const reader = await client(server.url, READER).post(`/v1/envs/${env}/facts`, w);
    expect(reader).toMatchObject({ status: 403, body: { error: 'forbidden' } });
    expect((await client(server.url, READER).get(`/v1/envs/${env}/snapshot`)).status).toBe(200);
    expect((await client(server.url, WRITER).post(`/v1/envs/${env}/facts`, w)).status).toBe(200);
    expect((await client(server.url, AGENT).post(`/v1/envs/${env}/facts`, w)).status).toBe(200);
    expect((await client(server.url).get('/healthz')).status).toBe(200);
    expect((await client(server.url).get('/readyz')).body).toMatchObject({ status: 'ready', store: kind });
    await expect(RawAgent.connect(server.url, undefined)).rejects.toThrow(/401/);
    await expect(RawAgent.connect(server.url, 'nope')).rejects.toThrow(/401/);
    const writerWs = await RawAgent.connect(server.url, WRITER, { type: 'hello', env, agent_id: 'w', applied: 0 });
    expect((await writerWs.waitClosed()).code).toBe(4403);
    expect(writerWs.messages[0]).toMatchObject({ type: 'error', error: 'forbidden' });
  });

  it('sync: timeout 0 answers at once, positive times out, negative waits until acked', async () => {
    const env = newEnv();
    const agent = await RawAgent.connect(server.url, AGENT, { type: 'hello', env, agent_id: 'held', applied: 0 });
    await agent.waitReceived(0); // the snapshot comes after registration
    const { version } = (await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'k', {})] })).body;
    await agent.waitReceived(version);

    const now = await admin.get(`/v1/envs/${env}/sync?version=${version}&timeout=0`);
    expect(now.body).toEqual({ version, synced: false, acked: [], pending: ['held'] });

    const t0 = Date.now();
    const timedOut = await admin.get(`/v1/envs/${env}/sync?version=${version}&wait_for=all&timeout=0.3`);
    expect(timedOut.body.synced).toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);

    const failing = await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'k2', {})] }, { 'x-wait-timeout': '0.2', 'x-timeout-policy': 'fail' });
    expect(failing.status).toBe(424);
    expect(failing.body).toMatchObject({ error: 'sync_timeout', version: version + 1 });
    await agent.waitReceived(version + 1);

    let settled = false;
    const forever = admin.get(`/v1/envs/${env}/sync?version=${version + 1}&timeout=-1`).then((r) => ((settled = true), r));
    await new Promise((r) => setTimeout(r, 300));
    expect(settled).toBe(false);
    agent.ack(version + 1);
    expect((await forever).body).toEqual({ version: version + 1, synced: true, acked: ['held'], pending: [] });

    expect((await admin.get(`/v1/envs/${env}/sync?version=1&timeout=soon`)).status).toBe(400);
    expect((await admin.get(`/v1/envs/${env}/sync?version=1&wait_for=local`)).status).toBe(400);
    expect((await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'k', {})] }, { 'x-wait-timeout': 'x' })).status).toBe(400);
    const agents = await admin.get(`/v1/envs/${env}/agents`);
    expect(agents.body).toEqual([{ id: 'held', applied: version + 1, connected: true, last_seen: expect.any(String), replica: server.config.replicaId }]);
    agent.close();
  });

  it('refuses an ack ahead of what the connection was sent (invariant 3: an ack claims every version up to it)', async () => {
    const env = newEnv();
    const forger = await RawAgent.connect(server.url, AGENT, { type: 'hello', env, agent_id: 'forger', applied: 0 });
    await forger.waitReceived(0);
    const { version } = (await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'k', {})] })).body;
    await forger.waitReceived(version);
    forger.ack(version + 5);
    expect(await forger.waitClosed()).toMatchObject({ code: 4400 });
    expect(forger.messages.at(-1)).toMatchObject({ type: 'error', error: 'invalid_request', message: expect.stringMatching(/ahead of the last version sent/) });
    expect((await admin.get(`/v1/envs/${env}/agents`)).body).toMatchObject([{ id: 'forger', applied: 0, connected: false }]);
  });
});
