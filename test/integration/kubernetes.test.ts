import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Secret, Service, ServiceAccount, ConfigMap } from 'kubernetes-models/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ROOT } from '../src/procs.js';

/**
 * deploy/kubernetes: no cluster runs here, so each manifest is parsed and
 * validated against the Kubernetes schemas (kubernetes-models), and checked
 * against what factsync reads: every variable set is one the component
 * reads (docs/operations.md's table), the probes are its health routes, and
 * the agent's projected token has the audience the server accepts.
 */
const KINDS: Record<string, new (o: never) => { validate(): void }> = {
  'apps/v1 Deployment': Deployment, 'v1 Secret': Secret, 'v1 Service': Service, 'v1 ServiceAccount': ServiceAccount,
  'v1 ConfigMap': ConfigMap, 'policy/v1 PodDisruptionBudget': PodDisruptionBudget,
};
/** Container fields these manifests use: the schemas allow unknown ones, so a typo (readinesProbe) would pass them. */
const CONTAINER_FIELDS = new Set(['name', 'image', 'command', 'args', 'env', 'ports', 'readinessProbe', 'livenessProbe', 'resources', 'securityContext', 'volumeMounts']);

type Doc = { apiVersion: string; kind: string; metadata: { name: string }; spec?: any };
const dir = join(ROOT, 'deploy/kubernetes');
const docs: Doc[] = readdirSync(dir).filter((f) => f.endsWith('.yaml')).flatMap((f) =>
  parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${f}: ${d.errors[0]!.message}`);
    return d.toJS() as Doc;
  }));
const documented = (component: 'server' | 'agent'): Set<string> => {
  const table = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8').split('\n').filter((l) => l.startsWith('| `'));
  const out = new Set<string>();
  for (const row of table) {
    const [vars, comp] = row.split('|').slice(1, 3).map((c) => c.trim());
    if (comp === component || comp === 'both') for (const m of vars!.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) out.add(m[1]!);
  }
  return out;
};
const deployment = (name: string) => docs.find((d) => d.kind === 'Deployment' && d.metadata.name === name)!;
const container = (d: Doc, name: string) => d.spec.template.spec.containers.find((c: { name: string }) => c.name === name);
const envOf = (c: { env: { name: string; value?: string }[] }) => Object.fromEntries(c.env.map((e) => [e.name, e.value]));

describe('deploy/kubernetes', () => {
  it('every manifest is a valid Kubernetes object of a known kind', () => {
    expect(docs.length).toBeGreaterThanOrEqual(6);
    for (const d of docs) {
      const Kind = KINDS[`${d.apiVersion} ${d.kind}`];
      expect(Kind, `${d.apiVersion} ${d.kind}`).toBeDefined();
      expect(() => new Kind!(d as never).validate(), `${d.kind} ${d.metadata.name}`).not.toThrow();
      for (const c of d.kind === 'Deployment' ? d.spec.template.spec.containers : []) {
        expect(Object.keys(c).filter((k) => !CONTAINER_FIELDS.has(k)), `${d.metadata.name}/${c.name}`).toEqual([]);
        // Every mount names a volume of the pod.
        const volumes = new Set(d.spec.template.spec.volumes?.map((v: { name: string }) => v.name));
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${c.name} mounts ${m.name}`).toBe(true);
      }
    }
    // The validator does refuse a wrong manifest.
    expect(() => new Deployment({ metadata: { name: 'x' }, spec: { selector: {}, template: { spec: { containers: [{ name: 'a', ports: [{ containerPort: 'http' as never }] }] } } } }).validate()).toThrow(/containerPort must be integer/);
  });

  it('the server and the agent sidecar set only variables they read, probe their health routes, and agree on the token audience', () => {
    const server = container(deployment('factsync-server'), 'server');
    const agent = container(deployment('payments-api'), 'factsync-agent');
    const serverVars = documented('server');
    const agentVars = documented('agent');
    for (const e of server.env) expect(serverVars.has(e.name) || e.name === 'NODE_EXTRA_CA_CERTS', `server ${e.name}`).toBe(true);
    for (const e of agent.env) expect(agentVars.has(e.name), `agent ${e.name}`).toBe(true);
    expect([server.readinessProbe.httpGet.path, server.livenessProbe.httpGet.path]).toEqual(['/readyz', '/healthz']);
    expect(server.readinessProbe.httpGet.scheme).toBe('HTTPS');
    expect([agent.readinessProbe.httpGet.path, agent.livenessProbe.httpGet.path]).toEqual(['/readyz', '/healthz']);

    // The agent's identity: the pod's projected service-account token, for the audience the server checks.
    const token = envOf(agent).AGENT_TOKEN_FILE!;
    const mount = agent.volumeMounts.find((m: { mountPath: string }) => token.startsWith(`${m.mountPath}/`));
    const volume = deployment('payments-api').spec.template.spec.volumes.find((v: { name: string }) => v.name === mount.name);
    const projected = volume.projected.sources[0].serviceAccountToken;
    expect(`${mount.mountPath}/${projected.path}`).toBe(token);
    expect(projected.audience).toBe(envOf(server).JWT_AUDIENCE);
    // Its service account is one JWT_SUBJECTS gives the agent role in its env.
    const sa = `system:serviceaccount:payments:${deployment('payments-api').spec.template.spec.serviceAccountName}`;
    const [subject, grant] = envOf(server).JWT_SUBJECTS!.split('=');
    expect(sa.startsWith(subject!.replace(/\*$/, ''))).toBe(true);
    expect(grant).toBe(`agent:${envOf(agent).AGENT_ENV}`);
    // TLS on both ends.
    expect(envOf(agent).SERVER_URL).toMatch(/^https:\/\//);
    expect(envOf(server).TLS_CERT_FILE).toBeDefined();
  });
});
