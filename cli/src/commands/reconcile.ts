import { createHash } from 'node:crypto';
import type { Op } from '@factsync/shared';
import { canonicalJson, inScope, replayBetween, scanScope, type Scope } from '@factsync/sdk';
import { UsageError, printJson, writeOut, type CliContext } from '../context.js';
import { withRetry } from '../retry.js';
import { jsonLines } from '../inputs.js';
import { writePlan, type Planned } from '../plan.js';

/** 16 bytes of SHA-1 as a one-byte string: the smallest key a million of which a Map holds cheaply. */
const digest = (value: unknown): string => createHash('sha1').update(canonicalJson(value)).digest().subarray(0, 16).toString('latin1');

/**
 * `reconcile FILE --type T [--tenant X]`: makes the env's facts of the scope
 * equal to the file's. The server's scope is read page by page and kept as
 * key → digest of its value (not the values), the file is streamed against
 * it: what is missing or different is upserted, what the file lacks is
 * deleted, and nothing else of the env is read or touched.
 */
export async function reconcile(c: CliContext, file: string, o: { type?: string; tenant?: string; dryRun?: boolean }): Promise<void> {
  if (!o.type) throw new UsageError('reconcile needs --type T: the type of facts the file holds (all of them, for that type)');
  const scope: Scope = { type: o.type, tenant: o.tenant };
  const what = `${o.type} facts${o.tenant ? ` of tenant "${o.tenant}"` : ''}`;

  // The server's side, exact at the scan's last version (see export.ts): key → digest of its value,
  // and once the file names a key, the file's line (a number), so one map serves both sides.
  const server = new Map<string, string | number>();
  const scan = scanScope(c.server, scope);
  let step = await scan.next();
  for (; !step.done; step = await scan.next()) for (const f of step.value.facts) server.set(f.key, digest(f.value));
  const bounds = step.value;
  for (const [field, f] of await withRetry(() => replayBetween(c.server, scope, bounds))) {
    const key = field.slice(o.type.length + 1);
    if (f === null) server.delete(key);
    else server.set(key, digest(f.value));
  }

  const plan: Planned[] = [];
  let unchanged = 0;
  for await (const item of jsonLines(file)) {
    if ('error' in item) throw new UsageError(`${file} line ${item.line}: ${item.error}; nothing was written`);
    const op = item.op;
    if (op.op !== 'upsert') throw new UsageError(`${file} line ${item.line}: reconcile takes facts {type, key, value}, not ops; nothing was written`);
    if (!inScope(scope, op.type, op.value)) {
      throw new UsageError(`${file} line ${item.line}: ${op.type} "${op.key}"${o.tenant ? ` (tenant ${JSON.stringify(op.value.tenant ?? null)})` : ''} is not one of the ${what} being reconciled; nothing was written`);
    }
    const was = server.get(op.key);
    if (typeof was === 'number') throw new UsageError(`${file} line ${item.line}: ${op.type} "${op.key}" is also on line ${was}; a fact appears once; nothing was written`);
    if (was === digest(op.value)) unchanged++;
    else plan.push({ op, was: was === undefined ? 'missing' : 'different' });
    server.set(op.key, item.line);
  }
  const extra: string[] = [];
  for (const [key, v] of server) if (typeof v === 'string') extra.push(key);
  for (const key of extra.sort()) plan.push({ op: { op: 'delete', type: o.type, key } satisfies Op, was: 'extra' });

  const summary = {
    env: c.server.env, type: o.type, tenant: o.tenant, read_at: bounds.to.version,
    upserts: plan.filter((p) => p.op.op === 'upsert').length, deletes: plan.filter((p) => p.op.op === 'delete').length, unchanged,
  };
  if (o.dryRun || plan.length === 0) {
    if (c.json) {
      for (const p of plan) await printJson(c, { ...p.op, was: p.was });
      c.err.write(`${plan.length === 0 ? 'nothing to change' : 'dry run: nothing written'}: ${summary.upserts} upserts, ${summary.deletes} deletes, ${unchanged} unchanged ${what} (read at version ${bounds.to.version})\n`);
    } else {
      await showPlan(c, plan);
      await writeOut(c.out, `${plan.length === 0 ? 'nothing to change' : 'dry run, nothing written'}: ${summary.upserts} to upsert, ${summary.deletes} to delete, ${unchanged} unchanged ${what} (read at version ${bounds.to.version})\n`);
    }
    return;
  }
  const written = await writePlan(c, plan.map((p) => p.op), `reconcile of ${what}`);
  if (c.json) return printJson(c, { ...summary, ...written });
  await showPlan(c, plan);
  await writeOut(c.out, `${summary.upserts} upserted, ${summary.deletes} deleted, ${unchanged} unchanged ${what}: ${written.versions[0] === written.versions[1] ? `version ${written.versions[0]}` : `versions ${written.versions[0]}..${written.versions[1]} (${written.writes} writes)`}\n`);
}

/** The diff as people read it: + new, ~ changed, - deleted (the first 50). */
async function showPlan(c: CliContext, plan: readonly Planned[]): Promise<void> {
  const shown = plan.slice(0, 50).map((p) => `${p.op.op === 'delete' ? '-' : p.was === 'missing' ? '+' : '~'} ${p.op.type} ${p.op.key}`);
  if (plan.length > 50) shown.push(`… and ${plan.length - 50} more`);
  if (shown.length > 0) await writeOut(c.out, `${shown.join('\n')}\n`);
}
