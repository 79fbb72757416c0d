import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import fc from 'fast-check';
import WebSocket from 'ws';
import { startServer, startAgent, type RunningServer } from '../src/inproc.js';
import { client, upsert } from '../src/http.js';
import { RawAgent } from '../src/raw-agent.js';
import { SOAK_SCALE, waitUntil } from '../src/wait.js';

const ROLES = ['admin', 'writer', 'agent', 'reader'] as const;
const tokenOf = (role: string) => `${role}-own-token`;
const AUTH_TOKENS = `${ROLES.map((r) => `${tokenOf(r)}=${r}:own`).join(',')},bound-token=agent:own:pdp-eu-*`;

/** Raw HTTP, so bodies can be any bytes (invalid UTF-8 included) and headers anything Node will send. */
function raw(base: string, method: string, path: string, body: Buffer | string | undefined, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, base);
    const req = request({ host: u.hostname, port: u.port, method, path: u.pathname + u.search, headers }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

describe('security: authorization matrix, fuzzing, limits', () => {
  let server: RunningServer;
  let agent: Awaited<ReturnType<typeof startAgent>>;
  const totals = { httpInputs: 0, wsFrames: 0, fiveHundreds: 0 };

  beforeAll(async () => {
    server = await startServer({ env: { AUTH_TOKENS, LEASE_MS: '1500', PING_INTERVAL_MS: '400', WS_MAX_PAYLOAD_BYTES: '4096', BODY_LIMIT_BYTES: '65536', MAX_OPS_PER_WRITE: '50', MAX_CONNECTIONS_PER_TOKEN: '200' } });
    // A healthy agent that must keep working through everything below.
    agent = await startAgent(server.url, { env: { AGENT_TOKEN: tokenOf('agent'), AGENT_ENV: 'own', AGENT_ID: 'bystander' } });
    await waitUntil(() => agent.status().ready, 'bystander ready');
  });
  afterAll(async () => {
    console.log(`[security] ${JSON.stringify(totals)}`);
    await agent.close();
    await server.close();
  });

  it('authorization matrix: every route × every role × own env / other env / no token / bad token', async () => {
    const routes: { name: string; cap: 'read' | 'write'; call: (env: string, token?: string) => Promise<number> }[] = [
      { name: 'POST facts', cap: 'write', call: async (env, t) => (await client(server.url, t).post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', 'm', {})] })).status },
      { name: 'GET head', cap: 'read', call: async (env, t) => (await client(server.url, t).get(`/v1/envs/${env}/head`)).status },
      { name: 'GET snapshot', cap: 'read', call: async (env, t) => (await client(server.url, t).get(`/v1/envs/${env}/snapshot`)).status },
      { name: 'GET changes', cap: 'read', call: async (env, t) => (await client(server.url, t).get(`/v1/envs/${env}/changes?after=0`)).status },
      { name: 'GET sync', cap: 'read', call: async (env, t) => (await client(server.url, t).get(`/v1/envs/${env}/sync?version=0`)).status },
      { name: 'GET agents', cap: 'read', call: async (env, t) => (await client(server.url, t).get(`/v1/envs/${env}/agents`)).status },
    ];
    const can: Record<string, string[]> = { admin: ['read', 'write'], writer: ['read', 'write'], agent: ['read', 'write'], reader: ['read'] };
    let cells = 0;
    for (const r of routes) {
      for (const role of ROLES) {
        expect(await r.call('own', tokenOf(role)), `${r.name} ${role} own`).toBe(can[role]!.includes(r.cap) ? 200 : 403);
        expect(await r.call('other', tokenOf(role)), `${r.name} ${role} other env`).toBe(403);
        cells += 2;
      }
      expect(await r.call('own'), `${r.name} no token`).toBe(401);
      expect(await r.call('own', 'not-a-token'), `${r.name} bad token`).toBe(401);
      cells += 2;
    }
    // Websocket: acking agent (admin, agent) and subscriber (admin, agent, reader).
    const wsCan = { ack: ['admin', 'agent'], subscribe: ['admin', 'agent', 'reader'] };
    for (const role of ROLES) {
      for (const [mode, allowed] of Object.entries(wsCan)) {
        for (const env of ['own', 'other']) {
          const a = await RawAgent.connect(server.url, tokenOf(role), { type: 'hello', env, agent_id: `m-${role}`, applied: 0, ack: mode === 'ack' });
          if (env === 'own' && allowed.includes(role)) {
            await waitUntil(() => a.messages.length > 0, 'welcome');
            expect(a.messages[0]?.type, `${role} ${mode} ${env}`).toBe('welcome');
          } else {
            expect((await a.waitClosed()).code, `${role} ${mode} ${env}`).toBe(4403);
          }
          a.close();
          cells++;
        }
      }
    }
    await expect(RawAgent.connect(server.url, undefined)).rejects.toThrow(/401/);
    await expect(RawAgent.connect(server.url, 'bad')).rejects.toThrow(/401/);
    // A token bound to agent ids cannot connect as another agent.
    const impostor = await RawAgent.connect(server.url, 'bound-token', { type: 'hello', env: 'own', agent_id: 'bystander', applied: 0 });
    expect((await impostor.waitClosed()).code).toBe(4403);
    expect(impostor.messages[0]).toMatchObject({ type: 'error', error: 'forbidden' });
    const own = await RawAgent.connect(server.url, 'bound-token', { type: 'hello', env: 'own', agent_id: 'pdp-eu-1', applied: 0 });
    await waitUntil(() => own.messages.length > 0, 'welcome');
    expect(own.messages[0]?.type).toBe('welcome');
    own.close();
    // Only health, metrics, docs and the status page shell are open.
    for (const p of ['/healthz', '/readyz', '/metrics', '/docs/json', '/']) expect((await client(server.url).get(p)).status, p).toBe(200);
    expect((await client(server.url).get('/v1/envs')).status).toBe(401);
    expect((await client(server.url).get('/v1/envs/own/status/stream')).status).toBe(401);
    expect((await client(server.url, tokenOf('reader')).get('/v1/envs')).body).toEqual({ envs: ['own'] });
    expect(cells).toBe(6 * 10 + 4 * 2 * 2);
  });

  it('fuzz: thousands of malformed HTTP requests get a clear 4xx, never a 5xx, and the server keeps serving', async () => {
    const admin = { authorization: `Bearer ${tokenOf('admin')}` };
    const bodies = fc.oneof(
      fc.json().map((j) => Buffer.from(j)),
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify({ ops: [v] }))),
      fc.record({ op: fc.oneof(fc.constant('upsert'), fc.constant('delete'), fc.string()), type: fc.string(), key: fc.string(), value: fc.jsonValue() }, { requiredKeys: [] })
        .map((o) => Buffer.from(JSON.stringify({ ops: [o] }))),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.string().map((s) => Buffer.from(s)),
      fc.integer({ min: 1, max: 400 }).map((d) => Buffer.from(`{"ops":[{"op":"upsert","type":"t","key":"k","value":${'{"a":'.repeat(d)}1${'}'.repeat(d)}}]}`)),
      fc.constant(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), // invalid UTF-8 inside JSON
    );
    const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);
    const requests = fc.record({
      body: bodies,
      contentType: fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-8', 'application/x-www-form-urlencoded', ''),
      waitFor: fc.option(headerValue), waitTimeout: fc.option(headerValue), policy: fc.option(headerValue), idem: fc.option(headerValue),
      env: fc.oneof(fc.constant('own'), fc.stringMatching(/^[\x21-\x7e]{0,70}$/).map(encodeURIComponent)),
    });
    await fc.assert(fc.asyncProperty(requests, async (r) => {
      const headers: Record<string, string> = { ...admin };
      if (r.contentType) headers['content-type'] = r.contentType;
      if (r.waitFor !== null) headers['x-wait-for'] = r.waitFor;
      if (r.waitTimeout !== null) {
        // Never wait long in a fuzz run: an empty or negative timeout waits until synced (for ever, when
        // X-Wait-For names an agent that does not exist), and a long one waits that long.
        const t = r.waitTimeout.trim() === '' ? '0' : r.waitTimeout.replace(/^(\s*)-/, '$10');
        headers['x-wait-timeout'] = Number(t) > 0.2 ? '0.2' : t;
      }
      if (r.policy !== null) headers['x-timeout-policy'] = r.policy;
      if (r.idem !== null) headers['idempotency-key'] = r.idem;
      const res = await raw(server.url, 'POST', `/v1/envs/${r.env}/facts`, r.body, headers);
      totals.httpInputs++;
      if (res.status >= 500) totals.fiveHundreds++;
      expect(res.status, `${res.status} ${res.text.slice(0, 200)}`).toBeLessThan(500);
      if (res.status >= 400) {
        const b = JSON.parse(res.text) as { error: string; message: string };
        expect(typeof b.error).toBe('string');
        expect(b.message.length).toBeGreaterThan(5);
      }
    }), { numRuns: 1500 * SOAK_SCALE });

    const queries = fc.record({
      path: fc.constantFrom('changes', 'sync', 'head', 'snapshot', 'agents'),
      q: fc.dictionary(fc.constantFrom('after', 'limit', 'version', 'wait_for', 'timeout', 'x'), fc.stringMatching(/^[\x21-\x7e]{0,12}$/)),
    });
    await fc.assert(fc.asyncProperty(queries, async ({ path, q }) => {
      // An empty or negative timeout waits until synced: for ever, for a `wait_for` agent that does not exist.
      if (q.timeout !== undefined && (q.timeout.trim() === '' || q.timeout.startsWith('-') || Number(q.timeout) > 1)) q.timeout = '0';
      const res = await raw(server.url, 'GET', `/v1/envs/own/${path}?${new URLSearchParams(q)}`, undefined, admin);
      totals.httpInputs++;
      expect(res.status, `${path}?${new URLSearchParams(q)} → ${res.text.slice(0, 200)}`).toBeLessThan(500);
    }), { numRuns: 500 * SOAK_SCALE });

    expect((await client(server.url).get('/readyz')).status).toBe(200);
    const w = await client(server.url, tokenOf('admin')).post('/v1/envs/own/facts', { ops: [upsert('doc', 'after-fuzz', {})] }, { 'x-wait-timeout': '5' });
    expect(w.body.sync, JSON.stringify(w.body)).toMatchObject({ synced: true });
    expect(agent.store.get('doc', 'after-fuzz')).toBeDefined();
  });

  it('fuzz: malformed, forged, out-of-order, huge and non-UTF-8 websocket frames close that socket with a clear code and harm no one else', async () => {
    const token = tokenOf('agent');
    const hello = { type: 'hello', env: 'own', agent_id: 'fuzz', applied: 0 };
    const frames = fc.oneof(
      fc.string().map((s) => ({ kind: 'text' as const, data: s })),
      fc.json().map((s) => ({ kind: 'text' as const, data: s })),
      fc.record({ type: fc.constantFrom('hello', 'ack', 'nope'), version: fc.oneof(fc.integer(), fc.double(), fc.string()), env: fc.string(), applied: fc.integer() }, { requiredKeys: [] })
        .map((o) => ({ kind: 'text' as const, data: JSON.stringify(o) })),
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((a) => ({ kind: 'binary' as const, data: Buffer.from(a) })),
      fc.constant({ kind: 'badutf8' as const, data: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }),
      fc.integer({ min: 5000, max: 20000 }).map((n) => ({ kind: 'text' as const, data: 'x'.repeat(n) })),
      fc.integer({ min: 1, max: 1000 }).map((v) => ({ kind: 'forged-ack' as const, data: String(v) })),
      fc.constant({ kind: 'double-hello' as const, data: '' }),
    );
    const allowed = new Set([4400, 1007, 1009, 1002, 1003]);
    await fc.assert(fc.asyncProperty(frames, fc.boolean(), async (f, afterHello) => {
      const ws = new WebSocket(`${server.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${token}` } });
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      ws.on('error', () => undefined);
      await new Promise((r) => ws.once('open', r));
      if (afterHello || f.kind === 'forged-ack' || f.kind === 'double-hello') ws.send(JSON.stringify(hello));
      if (f.kind === 'binary') ws.send(f.data, { binary: true });
      else if (f.kind === 'badutf8') ws.send(f.data, { binary: false });
      else if (f.kind === 'forged-ack') ws.send(JSON.stringify({ type: 'ack', version: 1_000_000 + Number(f.data) }));
      else if (f.kind === 'double-hello') ws.send(JSON.stringify(hello));
      else ws.send(f.data);
      totals.wsFrames++;
      const code = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(0), 300))]);
      // Either the frame was harmless (still open) or the socket was closed with a protocol code.
      if (code !== 0) expect(allowed.has(code), `close ${code} for ${f.kind} ${String(f.data).slice(0, 40)}`).toBe(true);
      ws.terminate();
    }), { numRuns: 400 * SOAK_SCALE });

    const w = await client(server.url, tokenOf('admin')).post('/v1/envs/own/facts', { ops: [upsert('doc', 'after-ws-fuzz', {})] }, { 'x-wait-for': 'bystander', 'x-wait-timeout': '5' });
    expect(w.body.sync.synced).toBe(true);
    expect(agent.status().connected).toBe(true);
    expect(agent.status().reconnects).toBe(0);
  });

  it('limits: frame size, connections per token, body size, ops per write — each configurable and enforced', async () => {
    const big = await RawAgent.connect(server.url, tokenOf('reader'));
    big.send('x'.repeat(5000));
    expect((await big.waitClosed()).code).toBe(1009);

    const held: RawAgent[] = [];
    for (let i = 0; i < 200; i++) held.push(await RawAgent.connect(server.url, tokenOf('reader')));
    await expect(RawAgent.connect(server.url, tokenOf('reader'))).rejects.toThrow(/429/);
    const other = await RawAgent.connect(server.url, tokenOf('admin')); // the limit is per token
    other.close();
    held.pop()!.close();
    await waitUntil(async () => RawAgent.connect(server.url, tokenOf('reader')).then((a) => (held.push(a), true), () => false), 'a slot to free');
    for (const h of held) h.close();

    const admin = client(server.url, tokenOf('admin'));
    expect((await admin.post('/v1/envs/own/facts', { ops: [upsert('doc', 'k', { b: 'x'.repeat(70_000) })] })).status).toBe(413);
    expect((await admin.post('/v1/envs/own/facts', { ops: Array.from({ length: 51 }, (_, i) => upsert('doc', `k${i}`, {})) })).status).toBe(413);
    expect((await admin.post('/v1/envs/own/facts', { ops: Array.from({ length: 50 }, (_, i) => upsert('doc', `k${i}`, {})) })).status).toBe(200);
  });
});
