import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { Agent, fetch } from 'undici';
import WebSocket from 'ws';
import { Harness, TOKENS, ADMIN } from './lib/harness.js';
import { Progress } from './lib/stats.js';
import { makeCertificates } from './lib/certs.js';

/**
 * The cost of identity and transport on the hot path, one run, one machine:
 * a server on Redis authenticating by static token, by HS256 JWT, by ES256
 * JWT (JWKS file), and serving TLS (static token). For each: HTTP writes/s
 * (16 concurrent writers, one op each, keep-alive connections) and
 * websocket connects/s (subscribers resuming at the head: upgrade,
 * authentication, hello, welcome; 50 at a time). The static-token plain run is the baseline.
 */
const QUICK = process.env.BENCH_QUICK === '1';
const WRITES = QUICK ? 2000 : 12_000;
const SOCKETS = QUICK ? 300 : 2000;
const SECRET = 'bench-secret-of-at-least-32-bytes-long!';
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

async function writesPerSecond(url: string, token: string, dispatcher: Agent, env: string): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < WRITES) {
      const i = next++;
      const res = await fetch(`${url}/v1/envs/${env}/facts`, {
        method: 'POST', dispatcher,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ops: [{ op: 'upsert', type: 'user', key: `u${i}`, value: { email: `u${i}@x.io` } }] }),
      });
      if (res.status !== 200) throw new Error(`write ${i}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    }
  }));
  return Math.round(WRITES / ((performance.now() - t0) / 1000));
}

async function connectsPerSecond(url: string, token: string, env: string, dispatcher: Agent, ca?: Buffer): Promise<number> {
  // Each socket resumes at the head: a hello at 0 would stream the env's snapshot (the writes above
  // made it 12,000 facts) to every socket, and the rate would measure snapshots, falling as they pile up.
  const head = await (await fetch(`${url}/v1/envs/${env}/head`, { dispatcher, headers: { authorization: `Bearer ${token}` } })).json() as { version: number; epoch: string; id: string };
  const wsUrl = url.replace(/^http/, 'ws') + '/v1/ws';
  let next = 0;
  const open: WebSocket[] = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next < SOCKETS) {
      const i = next++;
      await new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${token}` }, ...(ca ? { ca } : {}) });
        ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', env, agent_id: `s${i}`, applied: head.version, epoch: head.epoch, applied_id: head.id, ack: false })));
        ws.on('message', (d) => {
          if (String(d).includes('"welcome"')) {
            open.push(ws);
            resolve();
          }
        });
        ws.once('error', reject);
      });
    }
  }));
  const rate = Math.round(SOCKETS / ((performance.now() - t0) / 1000));
  for (const ws of open) ws.terminate();
  return rate;
}

export async function identity(): Promise<Record<string, unknown>> {
  const prog = new Progress('identity');
  const dir = mkdtempSync(join(tmpdir(), 'factsync-bench-id-'));
  const h = new Harness();
  try {
    await h.startRedis();
    const key = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(key.publicKey)), kid: 'b1', alg: 'ES256' };
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
    const claims = { role: 'admin', envs: ['*'] };
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('2h').sign(new TextEncoder().encode(SECRET));
    const es = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'b1' }).setExpirationTime('2h').sign(key.privateKey);
    const certs = makeCertificates(dir);
    const ca = readFileSync(certs.ca);

    const configs: { name: string; env: Record<string, string>; token: string; tls?: boolean }[] = [
      { name: 'static', env: {}, token: ADMIN },
      { name: 'jwt_hs256', env: { JWT_SECRET: SECRET }, token: hs },
      { name: 'jwt_es256', env: { JWT_JWKS_FILE: join(dir, 'jwks.json') }, token: es },
      { name: 'tls_static', env: { TLS_CERT_FILE: certs.cert, TLS_KEY_FILE: certs.key }, token: ADMIN, tls: true },
    ];
    const results: Record<string, { writes_per_s: number; connects_per_s: number }> = {};
    for (const c of configs) {
      prog.update(`${c.name}: starting`, true);
      const [server] = await h.servers(1, { AUTH_TOKENS: TOKENS, ...c.env });
      const dispatcher = new Agent({ connections: 16, connect: c.tls ? { ca } : {} });
      prog.update(`${c.name}: writes`, true);
      await writesPerSecond(server!.url, c.token, dispatcher, 'warm'); // JIT, connections
      const writes = await writesPerSecond(server!.url, c.token, dispatcher, 'bench');
      prog.update(`${c.name}: connects`, true);
      const connects = await connectsPerSecond(server!.url, c.token, 'bench', dispatcher, c.tls ? ca : undefined);
      await dispatcher.close();
      await server!.stop('SIGTERM');
      results[c.name] = { writes_per_s: writes, connects_per_s: connects };
      prog.done(`${c.name}: ${writes} writes/s, ${connects} websocket connects/s`);
    }
    const base = results.static!;
    const ratio = Object.fromEntries(Object.entries(results).map(([k, r]) => [k, { writes: round(r.writes_per_s / base.writes_per_s), connects: round(r.connects_per_s / base.connects_per_s) }]));
    return { params: { writes: WRITES, writers: 16, sockets: SOCKETS, socket_concurrency: 50 }, results, ratio_to_static: ratio };
  } finally {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
