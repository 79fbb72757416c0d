import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { SignJWT, UnsecuredJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { ADMIN, READER, TOKENS, newEnv } from '../src/inproc.js';
import { spawnAgent, spawnServer, type Proc } from '../src/procs.js';
import { client, upsert } from '../src/http.js';
import { RawAgent } from '../src/raw-agent.js';
import { cli } from '../src/cli.js';
import { waitUntil } from '../src/wait.js';
import WebSocket from 'ws';

/**
 * Identity: JWTs (HS256 with JWT_SECRET; ES256 from a JWKS file with issuer
 * and audience), every refusal reason, algorithm confusion, fuzzed garbage,
 * key rotation, a session whose token expires while an agent is connected
 * (it re-reads its token file and resumes without losing or repeating), the
 * agent_ids and tenants claims, minting, and AUTH_TOKENS_FILE re-read without a restart.
 */
const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const key = new TextEncoder().encode(SECRET);
const dir = mkdtempSync(join(tmpdir(), 'factsync-jwt-'));
const procs: Proc[] = [];
let hs: Proc;
let es: Proc;
let k1: { privateKey: CryptoKey; publicKey: CryptoKey; jwk: JWK };
let k2: typeof k1;
const jwksFile = join(dir, 'jwks.json');
const tokensFile = join(dir, 'tokens');

const now = () => Math.floor(Date.now() / 1000);
const hs256 = (claims: Record<string, unknown>, o: { exp?: number; nbf?: number; secret?: Uint8Array } = {}) => {
  const j = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(o.exp ?? now() + 600);
  if (o.nbf !== undefined) j.setNotBefore(o.nbf);
  return j.sign(o.secret ?? key);
};
const es256 = (k: typeof k1, claims: Record<string, unknown>, o: { iss?: string; aud?: string; exp?: number } = {}): Promise<string> =>
  new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: k.jwk.kid! }).setIssuedAt().setExpirationTime(o.exp ?? now() + 600)
    .setIssuer(o.iss ?? 'https://issuer.test').setAudience(o.aud ?? 'factsync').sign(k.privateKey);
const keyPair = async (kid: string) => {
  const p = await generateKeyPair('ES256', { extractable: true });
  return { ...p, jwk: { ...(await exportJWK(p.publicKey)), kid, alg: 'ES256', use: 'sig' } };
};
const writeJwks = (...keys: (typeof k1)[]) => writeFileSync(jwksFile, JSON.stringify({ keys: keys.map((k) => k.jwk) }));
const track = (p: Proc): Proc => {
  procs.push(p);
  return p;
};

beforeAll(async () => {
  k1 = await keyPair('k1');
  k2 = await keyPair('k2');
  writeJwks(k1);
  writeFileSync(tokensFile, '# rotated by the test\nfile-writer=writer:*\n');
  [hs, es] = await Promise.all([
    spawnServer({ AUTH_TOKENS: TOKENS, JWT_SECRET: SECRET, AUTH_TOKENS_FILE: tokensFile }),
    spawnServer({ AUTH_TOKENS: TOKENS, JWT_JWKS_FILE: jwksFile, JWT_ISSUER: 'https://issuer.test', JWT_AUDIENCE: 'factsync', JWT_SUBJECTS: 'system:serviceaccount:payments:*=agent:prod' }),
  ]);
  procs.push(hs, es);
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop('SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
});

const head = (p: Proc, token: string, env = 'prod') => client(p.url, token).get(`/v1/envs/${env}/head`);

describe('JWTs', () => {
  it('accepts a valid HS256 or ES256 token with its claims, and names the reason of every refusal', async () => {
    expect((await head(hs, await hs256({ role: 'reader', envs: ['prod'] }))).status).toBe(200);
    expect((await head(es, await es256(k1, { role: 'reader', envs: ['*'] }))).status).toBe(200);

    const refusals: [Proc, string, number, RegExp][] = [
      [hs, await hs256({ role: 'reader', envs: ['prod'] }, { exp: now() - 60 }), 401, /JWT refused: expired at \d{4}-/],
      [hs, await hs256({ role: 'reader', envs: ['prod'] }, { nbf: now() + 3600 }), 401, /JWT refused: not yet valid/],
      [hs, await hs256({ role: 'reader', envs: ['prod'] }, { secret: new TextEncoder().encode('another-secret-of-at-least-32-bytes!') }), 401, /JWT refused: bad signature/],
      [es, await es256(k1, { role: 'reader', envs: ['prod'] }, { iss: 'https://evil.test' }), 401, /JWT refused: wrong issuer "https:\/\/evil.test": this server accepts issuer "https:\/\/issuer.test"/],
      [es, await es256(k1, { role: 'reader', envs: ['prod'] }, { aud: 'someone-else' }), 401, /JWT refused: wrong audience "someone-else"/],
      [hs, await hs256({ envs: ['prod'] }), 401, /claim "role" must be one of admin, writer, agent, reader/],
      [hs, await hs256({ role: 'reader', envs: 'prod' }), 401, /claim "envs" must be a list/],
      [hs, await hs256({ role: 'reader', envs: ['other'] }), 403, /this token is for env "other", not "prod"/],
      [hs, await hs256({ role: 'reader', envs: ['prod'] }).then((t) => `${t.slice(0, -3)}abc`), 401, /JWT refused: bad signature/],
      // Algorithm confusion: no signature at all, and an HMAC keyed with the ES256 setup's public key.
      [hs, new UnsecuredJWT({ role: 'admin', envs: ['*'] }).encode(), 401, /algorithm "none" is not accepted here \(accepted: HS256\)/],
      [es, new UnsecuredJWT({ role: 'admin', envs: ['*'] }).encode(), 401, /algorithm "none" is not accepted here \(accepted: RS256, ES256, EdDSA\)/],
      [es, await new SignJWT({ role: 'admin', envs: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://issuer.test').setAudience('factsync')
        .sign(new TextEncoder().encode(await exportSPKI(k1.publicKey))), 401, /algorithm "HS256" is not accepted here/],
      [es, await es256(k2, { role: 'reader', envs: ['prod'] }), 401, /no key of the JWKS matches its key id/],
      [hs, 'bm90IGpzb24.e30.c2ln', 401, /JWT refused: malformed: its header is not base64url JSON/],
      [hs, `${'a'.repeat(9000)}.b.c`, 401, /unknown token/],
    ];
    for (const [server, token, status, message] of refusals) {
      const r = await head(server, token);
      expect(r.status, `${token.slice(0, 60)} → ${JSON.stringify(r.body)}`).toBe(status);
      expect(r.body.message).toMatch(message);
    }
  });

  it('a token without factsync claims (a Kubernetes service-account token) takes its role from JWT_SUBJECTS by subject', async () => {
    const sa = (sub: string) => es256(k1, { sub, 'kubernetes.io': { namespace: 'payments' } });
    expect((await head(es, await sa('system:serviceaccount:payments:pdp'))).status).toBe(200);
    expect((await client(es.url, await sa('system:serviceaccount:payments:pdp')).post('/v1/envs/prod/facts', { ops: [upsert('user', 'sa', {})] })).status).toBe(200);
    const otherEnv = await head(es, await sa('system:serviceaccount:payments:pdp'), 'staging');
    expect(otherEnv.status).toBe(403);
    const stranger = await head(es, await sa('system:serviceaccount:default:curious'));
    expect(stranger.status).toBe(401);
    expect(stranger.body.message).toMatch(/no factsync claims \(role, envs\) and its subject "system:serviceaccount:default:curious" is not in JWT_SUBJECTS/);
  });

  it('garbage and mangled tokens are a 4xx, never a 5xx', async () => {
    const valid = await hs256({ role: 'reader', envs: ['prod'] });
    const b64 = fc.stringMatching(/^[A-Za-z0-9_-]{0,80}$/);
    await fc.assert(fc.asyncProperty(fc.oneof(
      fc.tuple(b64, b64, b64).map(([a, b, c]) => `${a}.${b}.${c}`),
      fc.string({ maxLength: 200 }).map((s) => s.replace(/\s/g, 'x') || 'x'),
      fc.tuple(fc.nat(valid.length - 1), fc.constantFrom('A', '_', '-', '.', 'z')).map(([i, ch]) => valid.slice(0, i) + ch + valid.slice(i + 1)),
      fc.jsonValue().map((v) => `${Buffer.from(JSON.stringify({ alg: 'HS256' })).toString('base64url')}.${Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url')}.${valid.split('.')[2]}`),
    ), async (token) => {
      const r = await head(hs, token);
      expect(r.status, token).toBeLessThan(500);
      // Accepted only when it is the valid token after all (a character swapped for itself, or base64url's spare bits).
      const same = token.split('.').map((x) => Buffer.from(x, 'base64url').toString('hex')).join('.') === valid.split('.').map((x) => Buffer.from(x, 'base64url').toString('hex')).join('.');
      if (!same) expect(r.status, token).toBeGreaterThanOrEqual(400);
    }), { numRuns: 150 });
  });

  it('a key added to the JWKS file is used without a restart, and a key removed stops working', async () => {
    const env = newEnv();
    writeJwks(k1, k2);
    await waitUntil(async () => (await head(es, await es256(k2, { role: 'reader', envs: [env] }), env)).status === 200, 'the new key to be read', 10_000, 200);
    expect((await head(es, await es256(k1, { role: 'reader', envs: [env] }), env)).status).toBe(200);
    writeJwks(k2);
    await waitUntil(async () => (await head(es, await es256(k1, { role: 'reader', envs: [env] }), env)).status === 401, 'the old key to be dropped', 10_000, 200);
    expect((await head(es, await es256(k2, { role: 'reader', envs: [env] }), env)).status).toBe(200);
    writeJwks(k1, k2);
  });

  it('an agent whose token expires mid-session is closed 4401, reads its rotated token file, and resumes without losing or repeating a version', async () => {
    const env = newEnv();
    const tokenFile = join(dir, 'agent-token');
    writeFileSync(tokenFile, await hs256({ role: 'agent', envs: [env], agent_ids: ['pdp-jwt'] }, { exp: now() + 4 }));
    const agent = track(await spawnAgent({ SERVER_URL: hs.url, AGENT_TOKEN_FILE: tokenFile, AGENT_ENV: env, AGENT_ID: 'pdp-jwt' }));
    await waitUntil(async () => (await client(agent.url).get('/readyz')).status === 200, 'the agent to bootstrap');
    const write = (i: number) => client(hs.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: [upsert('user', `u${i}`, { attributes: { n: i } })] }, { 'x-wait-for': 'pdp-jwt', 'x-wait-timeout': '20' });
    for (let i = 1; i <= 3; i++) expect((await write(i)).body, 'write').toMatchObject({ sync: { synced: true } });
    // Rotated before it expires, as Kubernetes does with a projected token.
    writeFileSync(tokenFile, await hs256({ role: 'agent', envs: [env], agent_ids: ['pdp-jwt'] }, { exp: now() + 600 }));
    await waitUntil(() => agent.lines.some((l) => l.includes('token expired; reconnecting with the current token')), 'the session to expire', 20_000);
    // Writes go on across the reconnect; each is applied, acked, and the writer's wait is released.
    for (let i = 4; i <= 8; i++) expect((await write(i)).body.sync).toMatchObject({ synced: true, acked: ['pdp-jwt'] });
    const status = (await client(agent.url).get('/v1/status')).body;
    expect(status).toMatchObject({ applied: 8, snapshots_applied: 1, changes_applied: 8 });
    expect((await client(agent.url).get('/v1/facts/user/u8')).body.value).toEqual({ attributes: { n: 8 } });

    // agent_ids: the same token may not connect as another id.
    const other = track(await spawnAgent({ SERVER_URL: hs.url, AGENT_TOKEN_FILE: tokenFile, AGENT_ENV: env, AGENT_ID: 'pdp-other' }));
    await waitUntil(() => other.lines.some((l) => l.includes('this token may only connect as agent pdp-jwt, not \\"pdp-other\\"')), 'the refusal', 20_000);
    expect((await client(other.url).get('/readyz')).status).toBe(503);
  });

  it('a token limited to tenants reads its tenants only: no snapshot, change log, whole-env session, or fact outside them', async () => {
    const env = newEnv();
    const admin = client(hs.url, ADMIN);
    expect((await admin.post(`/v1/envs/${env}/facts`, { ops: [
      upsert('role_assignment', 'ann/viewer/acme', { user: 'ann', role: 'viewer', tenant: 'acme' }),
      upsert('role_assignment', 'bob/viewer/globex', { user: 'bob', role: 'viewer', tenant: 'globex' }),
      upsert('resource_instance', 'document:a1', { tenant: 'acme' }),
      upsert('user', 'ann', { email: 'ann@acme.test' }),
    ] })).status).toBe(200);
    const scoped = client(hs.url, await hs256({ role: 'agent', envs: [env], tenants: ['acme'] }));
    const whole = client(hs.url, await hs256({ role: 'agent', envs: [env] }));

    // What it may read: a scan of its tenant, a fact whose value names it, the head.
    const own = await scoped.get(`/v1/envs/${env}/facts?type=role_assignment&tenant=acme`);
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect(own.body.facts.map((f: { key: string }) => f.key)).toEqual(['ann/viewer/acme']);
    expect((await scoped.get(`/v1/envs/${env}/facts/resource_instance/document:a1`)).status).toBe(200);
    expect((await scoped.get(`/v1/envs/${env}/head`)).status).toBe(200);

    // What would show another tenant's facts: 403, naming the claim and what to do.
    const refused: [string, RegExp][] = [
      [`/v1/envs/${env}/snapshot`, /limited to tenant "acme": it cannot read the snapshot, which shows every tenant's facts/],
      [`/v1/envs/${env}/changes?after=0`, /it cannot read the change log/],
      [`/v1/envs/${env}/facts?type=role_assignment&tenant=globex`, /limited to tenant "acme", not "globex"/],
      [`/v1/envs/${env}/facts?type=role_assignment`, /it cannot scan without \?tenant=/],
      [`/v1/envs/${env}/facts/role_assignment/bob%2Fviewer%2Fglobex`, /limited to tenant "acme", not "globex"/],
      [`/v1/envs/${env}/facts/user/ann`, /it cannot read user "ann" \(it belongs to no tenant\)/],
    ];
    for (const [path, message] of refused) {
      const r = await scoped.get(path);
      expect(r.status, `${path} → ${JSON.stringify(r.body)}`).toBe(403);
      expect(r.body.message).toMatch(message);
      // The same reads with a token without the claim pass: the refusal is the claim's.
      expect((await whole.get(path)).status, path).toBe(200);
    }

    // A whole-env websocket session, acking or not, is refused with 4403 and the reason.
    for (const ack of [true, false]) {
      const ws = new WebSocket(`${hs.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${await hs256({ role: 'agent', envs: [env], tenants: ['acme'] })}` } });
      const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
      ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', env, agent_id: `scoped-${ack}`, applied: 0, ack })));
      const c = await closed;
      expect(c.code).toBe(4403);
      expect(c.reason).toMatch(/limited to tenant "acme"/);
    }

    // A scoped session within the claim is let in and gets the share of its tenants (and facts of no tenant);
    // one that asks for another tenant as well is refused.
    const token = await hs256({ role: 'agent', envs: [env], tenants: ['acme'] });
    const inScope = await RawAgent.connect(hs.url, token, { type: 'hello', env, agent_id: 'scoped-acme', applied: 0, ack: true, tenants: ['acme'] });
    try {
      const snap = await waitUntil(() => inScope.messages.find((m) => m.type === 'snapshot' && m.last !== false), 'a snapshot of the share');
      expect((snap as { facts: { key: string }[] }).facts.map((f) => f.key).sort()).toEqual(['ann', 'ann/viewer/acme', 'document:a1']);
    } finally {
      await inScope.close();
    }
    const beyond = await RawAgent.connect(hs.url, token, { type: 'hello', env, agent_id: 'scoped-two', applied: 0, ack: true, tenants: ['acme', 'globex'] });
    await waitUntil(() => beyond.closed, 'the refusal');
    expect(beyond.closed).toMatchObject({ code: 4403, reason: expect.stringMatching(/not "globex"/) });
    expect((await scoped.get(`/v1/envs/${env}/changes?after=0&tenants=acme`)).status).toBe(200);
    expect((await scoped.get(`/v1/envs/${env}/changes?after=0&tenants=globex`)).status).toBe(403);
  });

  it('POST /v1/tokens mints for an admin (and the CLI\'s token create), within its envs; a server without JWT_SECRET says so', async () => {
    const env = newEnv();
    const minted = await client(hs.url, ADMIN).post('/v1/tokens', { role: 'writer', envs: [env], ttl_seconds: 120 });
    expect(minted.status).toBe(200);
    expect(Date.parse(minted.body.expires_at) - Date.now()).toBeGreaterThan(100_000);
    const w = await client(hs.url, minted.body.token).post(`/v1/envs/${env}/facts`, { ops: [upsert('user', 'a', {})] });
    expect(w.status).toBe(200);
    expect((await client(hs.url, minted.body.token).post('/v1/envs/elsewhere/facts', { ops: [upsert('user', 'a', {})] })).status).toBe(403);

    expect((await client(hs.url, READER).post('/v1/tokens', { role: 'admin', envs: ['*'], ttl_seconds: 60 })).body.message).toMatch(/a reader token cannot mint tokens/);
    const scopedAdmin = await hs256({ role: 'admin', envs: [env] });
    expect((await client(hs.url, scopedAdmin).post('/v1/tokens', { role: 'reader', envs: ['*'], ttl_seconds: 60 })).body.message).toMatch(/may not mint for "\*"/);
    expect((await client(hs.url, ADMIN).post('/v1/tokens', { role: 'boss', envs: ['x'], ttl_seconds: 60 })).status).toBe(400);
    expect((await client(hs.url, ADMIN).post('/v1/tokens', { role: 'reader', envs: ['x'], ttl_seconds: 0 })).status).toBe(400);
    const none = await client(es.url, ADMIN).post('/v1/tokens', { role: 'reader', envs: ['x'], ttl_seconds: 60 });
    expect(none.status).toBe(404);
    expect(none.body.message).toMatch(/start it with JWT_SECRET set/);

    const r = await cli(['token', 'create', '--role', 'agent', '--envs', env, '--agent-ids', 'pdp-*', '--ttl', '60'], { FACTSYNC_URL: hs.url, FACTSYNC_TOKEN: ADMIN });
    expect(r.code).toBe(0);
    const token = JSON.parse(r.out).token as string;
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({ role: 'agent', envs: [env], agent_ids: ['pdp-*'] });
    expect((await head(hs, token, env)).status).toBe(200);
    const refused = await cli(['token', 'create', '--role', 'agent', '--envs', env], { FACTSYNC_URL: es.url, FACTSYNC_TOKEN: ADMIN });
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/does not mint tokens: start it with JWT_SECRET set/);
  });

  it('a minted token is never wider than its minter: tenants, agent ids and lifetime within its own; a JWT without exp is refused', async () => {
    const env = newEnv();
    const acmeAdmin = await hs256({ role: 'admin', envs: [env], tenants: ['acme'] }, { exp: now() + 600 });
    const mint = (token: string, body: Record<string, unknown>) => client(hs.url, token).post('/v1/tokens', { role: 'reader', envs: [env], ttl_seconds: 60, ...body });
    const wide = await mint(acmeAdmin, { role: 'admin' });
    expect(wide.status).toBe(403);
    expect(wide.body.message).toMatch(/limited to tenants acme: a token it mints must be too/);
    expect((await mint(acmeAdmin, { tenants: ['acme', 'globex'] })).body.message).toMatch(/cannot mint for globex/);
    expect((await mint(acmeAdmin, { tenants: ['acme'], ttl_seconds: 30 * 24 * 3600 })).body.message).toMatch(/may live at most \d+ s/);
    const ok = await mint(acmeAdmin, { tenants: ['acme'], ttl_seconds: 300 });
    expect(ok.status).toBe(200);
    // What it mints cannot read the whole env either.
    expect((await client(hs.url, ok.body.token).get(`/v1/envs/${env}/snapshot`)).status).toBe(403);

    const pdpAdmin = await hs256({ role: 'admin', envs: [env], agent_ids: ['pdp-*'] });
    expect((await mint(pdpAdmin, { role: 'agent' })).body.message).toMatch(/must name agent_ids within these/);
    expect((await mint(pdpAdmin, { role: 'agent', agent_ids: ['other'] })).body.message).toMatch(/cannot mint for other/);
    expect((await mint(pdpAdmin, { role: 'agent', agent_ids: ['pdp-eu-*', 'pdp-1'] })).status).toBe(200);

    const forever = await new SignJWT({ role: 'admin', envs: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().sign(key);
    const refused = await client(hs.url, forever).get('/v1/envs');
    expect(refused.status).toBe(401);
    expect(refused.body.message).toMatch(/no exp claim .*JWT_ALLOW_NO_EXP=true/);
  });

  it('AUTH_TOKENS_FILE is re-read when it changes: a token added works and one removed is refused, without a restart', async () => {
    expect((await head(hs, 'file-writer')).status).toBe(200);
    writeFileSync(tokensFile, 'rotated-reader=reader:prod\n');
    await waitUntil(async () => (await head(hs, 'rotated-reader')).status === 200, 'the new token', 10_000, 200);
    expect((await head(hs, 'file-writer')).status).toBe(401);
    // A broken file keeps the tokens it held, and says so.
    writeFileSync(tokensFile, 'this is not a token line\n');
    await waitUntil(() => hs.lines.some((l) => l.includes('AUTH_TOKENS_FILE is unusable; keeping the tokens it held before')), 'the complaint', 10_000);
    expect((await head(hs, 'rotated-reader')).status).toBe(200);
    expect(readFileSync(tokensFile, 'utf8')).toContain('not a token');
  });
});
