import { afterAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import WebSocket from 'ws';
import { loadAgentConfig } from '@factsync/pdp-agent';
import { ADMIN, AGENT, newEnv, startAgent, startServer } from '../src/inproc.js';
import { client } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/** One GET from a chosen local address, on a connection of its own. */
function getFrom(localAddress: string, url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string } | { error: string }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = request({ host: u.hostname, port: u.port, path, localAddress, agent: false, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (e) => resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end();
  });
}

/** `n` TCP connections that send nothing; resolves once each is either open or refused. */
async function silentSockets(url: string, n: number, localAddress: string): Promise<{ sockets: Socket[]; closed: () => number }> {
  const u = new URL(url);
  let closed = 0;
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => new Promise<void>((resolve) => {
      const s = connect({ host: u.hostname, port: Number(u.port), localAddress });
      sockets.push(s);
      s.on('error', () => undefined);
      s.on('close', () => closed++);
      s.once('connect', () => resolve());
      s.once('close', () => resolve());
    })));
  }
  return { sockets, closed: () => closed };
}

/** Invariant 10 for sockets: silent and slow connections cannot use up a replica, and health checks still answer. */
describe('bounded connections', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('thousands of silent sockets from one address: the rest of the world and /healthz are served, and the silent ones are closed', async () => {
    const server = await startServer({ env: { MAX_CONNECTIONS: '3000', MAX_CONNECTIONS_PER_ADDRESS: '1000', FIRST_BYTE_TIMEOUT_MS: '2000' } });
    closers.push(() => server.close());
    const env = newEnv();
    const { sockets, closed } = await silentSockets(server.url, 3000, '127.0.0.1');
    closers.push(async () => sockets.forEach((s) => s.destroy()));
    // Past the address's limit and its reserve, connections are closed at once.
    await waitUntil(() => closed() >= 3000 - 1000 - 64, 'the connections past the per-address limit closed');
    // Another address is served as usual, writes included.
    expect(await getFrom('127.0.0.2', server.url, '/healthz')).toMatchObject({ status: 200 });
    const w = await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'd', value: {} }] });
    expect([200, 429]).toContain(w.status); // from 127.0.0.1 itself: refused with a reason, or served once the silent ones are gone
    // FIRST_BYTE_TIMEOUT_MS later, every silent socket is gone, and the address is served again.
    await waitUntil(() => closed() === 3000, 'every silent socket closed', 20_000);
    expect(await getFrom('127.0.0.1', server.url, '/healthz')).toMatchObject({ status: 200 });
  });

  it('past MAX_CONNECTIONS, health checks are served and other requests get 429 too_many_connections', async () => {
    const server = await startServer({ env: { MAX_CONNECTIONS: '200', FIRST_BYTE_TIMEOUT_MS: '60000' } });
    closers.push(() => server.close());
    const { sockets } = await silentSockets(server.url, 200, '127.0.0.3');
    closers.push(async () => sockets.forEach((s) => s.destroy()));
    expect(await getFrom('127.0.0.4', server.url, '/healthz')).toMatchObject({ status: 200 });
    const refused = await getFrom('127.0.0.4', server.url, '/v1/envs', { authorization: `Bearer ${ADMIN}` });
    expect(refused).toMatchObject({ status: 429 });
    expect(JSON.parse((refused as { body: string }).body)).toMatchObject({ error: 'too_many_connections', message: expect.stringMatching(/200 connections are open \(most 200\).*health checks are still served/) });
    sockets.forEach((s) => s.destroy());
    await waitUntil(async () => (await getFrom('127.0.0.4', server.url, '/v1/envs', { authorization: `Bearer ${ADMIN}` }) as { status?: number }).status === 200, 'served again once they closed');
  });

  it('slowloris (a header line every 300 ms) is cut after HTTP_HEADERS_TIMEOUT_MS; a websocket without hello after HELLO_TIMEOUT_MS', async () => {
    const server = await startServer({ env: { HTTP_HEADERS_TIMEOUT_MS: '1500', HELLO_TIMEOUT_MS: '500' } });
    closers.push(() => server.close());
    const u = new URL(server.url);
    const slow = connect({ host: u.hostname, port: Number(u.port) });
    slow.on('error', () => undefined);
    let cut = false;
    slow.on('close', () => (cut = true));
    slow.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => slow.writable && slow.write('X-Slow: 1\r\n'), 300);
    closers.push(async () => clearInterval(drip));
    await waitUntil(() => cut, 'the slow client cut', 15_000);
    clearInterval(drip);

    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${AGENT}` } });
    const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    expect(code).toBe(4400);
  });
});

/** The agent's local API writes with the agent's token: safe by default. */
describe('an agent API that is not one DNS rebinding away', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('refuses to listen beyond loopback without AGENT_API_TOKEN unless AGENT_API_INSECURE=true', () => {
    const base = { AGENT_TOKEN: 't', SERVER_URL: 'http://127.0.0.1:7002' };
    expect(() => loadAgentConfig({ ...base, HOST: '0.0.0.0' })).toThrow(/HOST=0.0.0.0 without AGENT_API_TOKEN .*AGENT_API_INSECURE=true/);
    expect(() => loadAgentConfig({ ...base, HOST: '0.0.0.0', AGENT_API_TOKEN: 's' })).not.toThrow();
    expect(() => loadAgentConfig({ ...base, HOST: '0.0.0.0', AGENT_API_INSECURE: 'true' })).not.toThrow();
    expect(() => loadAgentConfig({ ...base, HOST: '127.0.0.1' })).not.toThrow();
    expect(() => loadAgentConfig({ ...base, HOST: '::1' })).not.toThrow();
  });

  it('has the server\'s connection limits: past MAX_CONNECTIONS its health checks answer and the rest is 429', async () => {
    const server = await startServer();
    closers.push(() => server.close());
    const agent = await startAgent(server.url, { env: { AGENT_ENV: newEnv(), MAX_CONNECTIONS: '100', FIRST_BYTE_TIMEOUT_MS: '60000' } });
    closers.push(() => agent.close());
    const { sockets } = await silentSockets(agent.url, 100, '127.0.0.5');
    closers.push(async () => sockets.forEach((s) => s.destroy()));
    expect(await getFrom('127.0.0.6', agent.url, '/healthz')).toMatchObject({ status: 200 });
    const refused = await getFrom('127.0.0.6', agent.url, '/v1/status');
    expect(refused).toMatchObject({ status: 429 });
    expect(JSON.parse((refused as { body: string }).body).error).toBe('too_many_connections');
  });

  it('bound to loopback, it answers only requests for its own names (a rebinding page sends its own Host)', async () => {
    const server = await startServer();
    closers.push(() => server.close());
    const agent = await startAgent(server.url, { env: { AGENT_ENV: newEnv() } });
    closers.push(() => agent.close());
    const port = new URL(agent.url).port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost']) {
      expect((await getFrom('127.0.0.1', agent.url, '/v1/status', { host })), host).toMatchObject({ status: 200 });
    }
    const rebound = await getFrom('127.0.0.1', agent.url, '/v1/status', { host: `evil.example:${port}` });
    expect(rebound).toMatchObject({ status: 403 });
    expect(JSON.parse((rebound as { body: string }).body).message).toMatch(/Host "evil.example" is not this agent's/);
    expect(await getFrom('127.0.0.1', agent.url, '/allowed', { host: 'attacker.test' })).toMatchObject({ status: 403 });
  });
});
