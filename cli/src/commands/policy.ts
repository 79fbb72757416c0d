import { readFile, writeFile } from 'node:fs/promises';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { parseOps, type Op, type UpsertOp } from '@factsync/shared';
import { canonicalJson, replayBetween, scanScope } from '@factsync/sdk';
import { UsageError, printJson, writeOut, type CliContext } from '../context.js';
import { writePlan, type Planned } from '../plan.js';
import { withRetry } from '../retry.js';

/** The policy types, in the order a policy file lists them (what a resource role or rule refers to comes first). */
export const POLICY_TYPES = ['resource', 'role', 'resource_role', 'condition_set', 'condition_set_rule'] as const;
type PolicyType = (typeof POLICY_TYPES)[number];
type Policy = Record<PolicyType, Map<string, Record<string, unknown>>>;

const emptyPolicy = (): Policy => Object.fromEntries(POLICY_TYPES.map((t) => [t, new Map()])) as Policy;

/** A policy file: type → key → value, validated op by op with the API's own messages. */
async function readPolicyFile(file: string): Promise<Policy> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    throw new UsageError(`${file} is not YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`${file} must map policy types (${POLICY_TYPES.join(', ')}) to {key: value}`);
  const policy = emptyPolicy();
  for (const [type, entries] of Object.entries(doc as Record<string, unknown>)) {
    if (!(POLICY_TYPES as readonly string[]).includes(type)) {
      throw new UsageError(`${file}: "${type}" is not a policy type; use ${POLICY_TYPES.join(', ')} (data such as users and role assignments goes through import)`);
    }
    if (entries === null) continue;
    if (typeof entries !== 'object' || Array.isArray(entries)) throw new UsageError(`${file}: ${type} must map keys to values, e.g. ${type}:\n  some-key: {…}`);
    for (const [key, value] of Object.entries(entries as Record<string, unknown>)) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`${file}: ${type} "${key}": the value must be an object`);
      const r = parseOps([{ op: 'upsert', type, key, value: value as Record<string, unknown> }]);
      if (!r.ok) throw new UsageError(`${file}: ${type} "${key}": ${r.error.replace(/^ops\[0\]:? ?(\([^)]*\): )?/, '')}`);
      policy[type as PolicyType].set(key, value as Record<string, unknown>);
    }
  }
  return policy;
}

/** The env's policy facts, exact at one version (each type scanned, the log replayed over it). */
async function currentPolicy(c: CliContext): Promise<{ policy: Policy; version: number }> {
  const policy = emptyPolicy();
  let version = 0;
  for (const type of POLICY_TYPES) {
    const scan = scanScope(c.server, { type });
    let step = await scan.next();
    for (; !step.done; step = await scan.next()) for (const f of step.value.facts) policy[type].set(f.key, f.value);
    const bounds = step.value;
    for (const [field, f] of await withRetry(() => replayBetween(c.server, { type }, bounds))) {
      const key = field.slice(type.length + 1);
      if (f === null) policy[type].delete(key);
      else policy[type].set(key, f.value);
    }
    version = Math.max(version, bounds.to.version);
  }
  return { policy, version };
}

/** `policy apply FILE`: the env's policy facts become the file's, in one version, and the diff is printed. */
export async function policyApply(c: CliContext, file: string, o: { dryRun?: boolean }): Promise<void> {
  const want = await readPolicyFile(file);
  const { policy: have, version } = await currentPolicy(c);
  const plan: Planned[] = [];
  for (const type of POLICY_TYPES) {
    for (const [key, value] of want[type]) {
      const was = have[type].get(key);
      if (was !== undefined && canonicalJson(was) === canonicalJson(value)) continue;
      plan.push({ op: { op: 'upsert', type, key, value } satisfies UpsertOp, was: was === undefined ? 'missing' : 'different' });
    }
  }
  // Deletes last, those that refer to others first: a rule before its sets, a resource role before its resource.
  for (const type of [...POLICY_TYPES].reverse()) {
    for (const key of [...have[type].keys()].sort()) if (!want[type].has(key)) plan.push({ op: { op: 'delete', type, key } satisfies Op, was: 'extra' });
  }
  const diff = plan.map((p) => `${p.op.op === 'delete' ? '-' : p.was === 'missing' ? '+' : '~'} ${p.op.type} ${p.op.key}`);
  if (plan.length === 0 || o.dryRun) {
    if (c.json) return printJson(c, { changes: diff, written: false, read_at: version });
    return writeOut(c.out, `${diff.length ? `${diff.join('\n')}\n` : ''}${plan.length === 0 ? 'policy unchanged: nothing to write' : `dry run: ${plan.length} changes, nothing written`} (read at version ${version})\n`);
  }
  const written = await writePlan(c, plan.map((p) => p.op), 'policy');
  if (c.json) return printJson(c, { changes: diff, written: true, versions: written.versions });
  await writeOut(c.out, `${diff.join('\n')}\npolicy applied: ${plan.length} changes as version ${written.versions[1]}\n`);
}

/** `policy export`: the env's policy in the file format `policy apply` reads (YAML, or JSON for a .json file or --format json). */
export async function policyExport(c: CliContext, o: { output?: string; format?: string }): Promise<void> {
  const format = o.format ?? (o.output?.toLowerCase().endsWith('.json') ? 'json' : 'yaml');
  if (format !== 'yaml' && format !== 'json') throw new UsageError(`--format ${format} is not one: use yaml or json`);
  const { policy, version } = await currentPolicy(c);
  const doc: Record<string, Record<string, unknown>> = {};
  for (const type of POLICY_TYPES) {
    if (policy[type].size === 0) continue;
    doc[type] = Object.fromEntries([...policy[type].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
  const text = format === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : `# policy of env "${c.server.env}" at version ${version}\n${toYaml(doc)}`;
  if (o.output) {
    await writeFile(o.output, text);
    c.err.write(`policy of env "${c.server.env}" at version ${version} written to ${o.output}\n`);
  } else {
    await writeOut(c.out, text);
  }
}
