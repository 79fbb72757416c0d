import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { AGENT, TOKENS, newEnv } from '../src/inproc.js';
import { spawnAgent, spawnServer, type Proc } from '../src/procs.js';
import { client } from '../src/http.js';
import { waitUntil } from '../src/wait.js';

/**
 * TLS between agents and servers, with certificates the test makes with
 * openssl: a write through an agent over HTTPS and WSS; an agent that does
 * not trust the server's certificate says so; mutual TLS refuses an agent
 * without a client certificate; a rotated certificate is served without a
 * restart.
 */
const dir = mkdtempSync(join(tmpdir(), 'factsync-tls-'));
const f = (name: string) => join(dir, name);
const procs: Proc[] = [];
const track = (p: Proc): Proc => {
  procs.push(p);
  return p;
};
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '2');
}
function makeCert(name: string, ca: string, ext: string): void {
  writeFileSync(f(`${name}.ext`), ext);
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
}
const serialOf = (port: number) => new Promise<string>((resolve, reject) => {
  const s = connect({ host: '127.0.0.1', port, ca: readFileSync(f('ca.crt')), servername: undefined }, () => {
    resolve(s.getPeerCertificate().serialNumber);
    s.end();
  });
  s.on('error', reject);
});

beforeAll(() => {
  makeCa('ca');
  makeCa('other-ca');
  makeCert('server', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  makeCert('server2', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  makeCert('pdp', 'ca', 'extendedKeyUsage=clientAuth\n');
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop('SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS', () => {
  it('an agent writes and follows over HTTPS and WSS, trusting SERVER_CA_FILE; a certificate it does not trust is refused with a clear line', async () => {
    copyFileSync(f('server.crt'), f('live.crt'));
    copyFileSync(f('server.key'), f('live.key'));
    const server = track(await spawnServer({ AUTH_TOKENS: TOKENS, TLS_CERT_FILE: f('live.crt'), TLS_KEY_FILE: f('live.key') }));
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const env = newEnv();
    const agent = track(await spawnAgent({ SERVER_URL: server.url, SERVER_CA_FILE: f('ca.crt'), AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'pdp-tls' }));
    await waitUntil(async () => (await client(agent.url).get('/readyz')).status === 200, 'the agent to bootstrap over WSS');
    const w = await client(agent.url).post('/v1/facts', { ops: [{ op: 'upsert', type: 'user', key: 'ann', value: { email: 'ann@x.io' } }] }, { 'x-wait-timeout': '10' });
    expect(w.body).toMatchObject({ version: 1, synced: true, applied: 1 });
    expect((await client(agent.url).get('/v1/facts/user/ann')).body.value).toEqual({ email: 'ann@x.io' });

    // Plain HTTP to a TLS port is not served.
    await expect(fetch(server.url.replace('https:', 'http:') + '/healthz').then((r) => r.status)).rejects.toThrow();

    // An agent that trusts another CA (or only the system's roots) stays unready and says why.
    const untrusting = track(await spawnAgent({ SERVER_URL: server.url, SERVER_CA_FILE: f('other-ca.crt'), AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'pdp-untrusting' }));
    await waitUntil(() => untrusting.lines.some((l) => l.includes("the server's TLS certificate is not trusted") && l.includes('set SERVER_CA_FILE')), 'the untrusted line', 20_000);
    expect((await client(untrusting.url).get('/readyz')).status).toBe(503);

    // The certificate files are replaced (a renewal): new connections get the new one, no restart.
    const before = await serialOf(Number(new URL(server.url).port));
    copyFileSync(f('server2.key'), f('live.key'));
    copyFileSync(f('server2.crt'), f('live.crt'));
    await waitUntil(async () => (await serialOf(Number(new URL(server.url).port))) !== before, 'the new certificate to be served', 10_000, 200);
    expect(await serialOf(Number(new URL(server.url).port))).toBe(execFileSync('openssl', ['x509', '-in', f('server2.crt'), '-noout', '-serial'], { encoding: 'utf8' }).trim().split('=')[1]);
    await waitUntil(() => server.lines.some((l) => l.includes('TLS certificate files changed')), 'the reload line');
  });

  it('mutual TLS: an agent without a client certificate is refused in the handshake; with one it syncs', async () => {
    const server = track(await spawnServer({ AUTH_TOKENS: TOKENS, TLS_CERT_FILE: f('server.crt'), TLS_KEY_FILE: f('server.key'), TLS_CLIENT_CA_FILE: f('ca.crt') }));
    const env = newEnv();
    const without = track(await spawnAgent({ SERVER_URL: server.url, SERVER_CA_FILE: f('ca.crt'), AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'pdp-nocert' }));
    const withCert = track(await spawnAgent({
      SERVER_URL: server.url, SERVER_CA_FILE: f('ca.crt'), AGENT_CERT_FILE: f('pdp.crt'), AGENT_KEY_FILE: f('pdp.key'), AGENT_TOKEN: AGENT, AGENT_ENV: env, AGENT_ID: 'pdp-cert',
    }));
    await waitUntil(async () => (await client(withCert.url).get('/readyz')).status === 200, 'the agent with a certificate to sync');
    const w = await client(withCert.url).post('/v1/facts', { ops: [{ op: 'upsert', type: 'tenant', key: 'acme', value: {} }] }, { 'x-wait-timeout': '10' });
    expect(w.body).toMatchObject({ version: 1, synced: true });
    await waitUntil(() => without.lines.some((l) => /TLS handshake failed.*AGENT_CERT_FILE and AGENT_KEY_FILE/.test(l)), 'the handshake line', 20_000);
    expect((await client(without.url).get('/readyz')).status).toBe(503);
    // And a client of the API without a certificate gets nothing either.
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});
