import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadServerConfig } from '@factsync/server';
import { loadAgentConfig } from '@factsync/pdp-agent';
import { ROOT } from '../src/procs.js';

/** Every variable a component reads, found by letting its config loader read through a recording proxy. */
function namesRead(load: (env: Record<string, string | undefined>) => unknown): Set<string> {
  const seen = new Set<string>();
  // Unset reads as unset, but for the variables a loader requires (a placeholder, so it reads on).
  const required: Record<string, string> = { AGENT_TOKEN: 'placeholder-token' };
  load(new Proxy({}, { get: (_t, k) => (typeof k === 'string' ? (seen.add(k), required[k]) : undefined) }));
  return seen;
}

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, unknown>;
}

describe('docker-compose.yml and Dockerfile', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
  const services = compose.services;
  const serverVars = namesRead(loadServerConfig);
  const agentVars = namesRead(loadAgentConfig);

  it('has Redis with AOF, two server replicas behind a load balancer, two agents, all with healthchecks', () => {
    expect(Object.keys(services).sort()).toEqual(['agent-1', 'agent-2', 'lb', 'redis', 'server-1', 'server-2']);
    expect(services.redis!.command).toEqual(expect.arrayContaining(['--appendonly', 'yes']));
    for (const s of Object.values(services)) expect(s.healthcheck?.test.length).toBeGreaterThan(0);
    const nginx = readFileSync(join(ROOT, 'deploy/nginx.conf'), 'utf8');
    expect(nginx).toMatch(/server server-1:7002/);
    expect(nginx).toMatch(/server server-2:7002/);
    expect(nginx).toMatch(/proxy_set_header Upgrade/);
  });

  it('servers and agents use only variables they read, including the ones the contract requires', () => {
    for (const name of ['server-1', 'server-2']) {
      const env = services[name]!.environment!;
      expect(services[name]!.command?.join(' ')).toContain('server/src/main.ts');
      for (const k of Object.keys(env)) expect(serverVars, `${name} sets ${k}`).toContain(k);
      expect(env.REDIS_URL).toBe('redis://redis:6379');
      expect(env.AUTH_TOKENS).toMatch(/=agent:/);
      expect(env.PORT).toBe('7002');
      expect(services[name]!.ports?.some((p) => p.endsWith(':7002'))).toBe(true);
      expect(() => loadServerConfig(env)).not.toThrow();
    }
    for (const name of ['agent-1', 'agent-2']) {
      const env = services[name]!.environment!;
      expect(services[name]!.command?.join(' ')).toContain('pdp-agent/src/main.ts');
      for (const k of Object.keys(env)) expect(agentVars, `${name} sets ${k}`).toContain(k);
      for (const k of ['SERVER_URL', 'AGENT_TOKEN', 'AGENT_ENV', 'AGENT_ID', 'DATA_DIR']) expect(env[k], `${name} ${k}`).toBeTruthy();
      for (const u of env.SERVER_URL!.split(',')) expect(Object.keys(services)).toContain(new URL(u).hostname);
      expect(services[name]!.ports?.some((p) => p.endsWith(':7766'))).toBe(true);
      expect(() => loadAgentConfig(env)).not.toThrow();
    }
    // The agent token of the compose file is one the servers accept for that env.
    const agentToken = services['agent-1']!.environment!.AGENT_TOKEN!;
    expect(services['server-1']!.environment!.AUTH_TOKENS).toContain(`${agentToken}=agent:${services['agent-1']!.environment!.AGENT_ENV}`);
  });

  it('the Dockerfile is multi-stage and runs as a non-root user', () => {
    const df = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(df.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(df).toMatch(/^USER node$/m);
    expect(df).toMatch(/npm ci/);
    // npm ci needs the package.json of every workspace before the sources are copied.
    const workspaces = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces;
    for (const w of workspaces) expect(df, w).toContain(`COPY ${w}/package.json ${w}/`);
  });

});

describe('the Node version the project runs on', () => {
  it('every package the lockfile installs supports Node 20 (npm ci prints no EBADENGINE warning)', async () => {
    const { default: semver } = await import('semver');
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; engines?: { node?: string } | string[] }> };
    const node20 = '20.19.0';
    const refused = Object.entries(lock.packages)
      .filter(([, p]) => p.engines && !Array.isArray(p.engines) && p.engines.node && !semver.satisfies(node20, p.engines.node))
      .map(([path, p]) => `${path}@${p.version} needs node ${(p.engines as { node: string }).node}`);
    expect(refused).toEqual([]);
    const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(semver.satisfies(node20, root.engines.node)).toBe(true);
  });
});
