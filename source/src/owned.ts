import { createHash } from 'node:crypto';
import { canonicalJson, replayBetween, scanScope, type FactsyncServerClient } from '@factsync/sdk';
import type { Op } from '@factsync/shared';

/** 16 bytes of SHA-1 as a one-byte string: what a million facts cost as a Map's values. */
export const digest = (value: unknown): string => createHash('sha1').update(canonicalJson(value)).digest().subarray(0, 16).toString('latin1');

/** A scope a source owns: the facts of a type (whose key matches, whose tenant is). */
export interface OwnedScope {
  type: string;
  keys?: RegExp;
  tenant?: string;
}

const owns = (s: OwnedScope, key: string, value: Record<string, unknown> | undefined) =>
  (s.keys === undefined || s.keys.test(key)) && (s.tenant === undefined || value?.tenant === s.tenant);

/**
 * The owned facts as the server holds them, exact at one version: a scan of
 * each type with the log replayed over it. Key → digest of the value; facts
 * of the type outside every scope (another writer's) are left out.
 */
export async function readOwned(server: FactsyncServerClient, scopes: readonly OwnedScope[]): Promise<Map<string, Map<string, string>>> {
  const byType = new Map<string, OwnedScope[]>();
  for (const s of scopes) byType.set(s.type, [...(byType.get(s.type) ?? []), s]);
  const out = new Map<string, Map<string, string>>();
  for (const [type, list] of byType) {
    const facts = new Map<string, string>();
    const scan = scanScope(server, { type });
    let step = await scan.next();
    for (; !step.done; step = await scan.next()) {
      for (const f of step.value.facts) if (list.some((s) => owns(s, f.key, f.value))) facts.set(f.key, digest(f.value));
    }
    for (const [field, f] of await replayBetween(server, { type }, step.value)) {
      const key = field.slice(type.length + 1);
      if (f !== null && list.some((s) => owns(s, f.key, f.value))) facts.set(key, digest(f.value));
      else facts.delete(key);
    }
    out.set(type, facts);
  }
  return out;
}

/**
 * Reconcile's plan: upserts of what differs from `desired`, deletes of the
 * owned facts `desired` lacks. `desired` is consumed as it is iterated (a
 * table read in batches): only the owned digests, the keys seen and the ops
 * are held, never the tables.
 */
export async function plan(owned: Map<string, Map<string, string>>, desired: AsyncIterable<{ type: string; key: string; value: Record<string, unknown> }> | Iterable<{ type: string; key: string; value: Record<string, unknown> }>): Promise<Op[]> {
  const ops: Op[] = [];
  const seen = new Map<string, Set<string>>();
  for await (const f of desired) {
    let keys = seen.get(f.type);
    if (!keys) seen.set(f.type, (keys = new Set()));
    if (keys.has(f.key)) continue;
    keys.add(f.key);
    if (owned.get(f.type)?.get(f.key) !== digest(f.value)) ops.push({ op: 'upsert', type: f.type, key: f.key, value: f.value });
  }
  for (const [type, facts] of owned) {
    const keep = seen.get(type);
    for (const key of [...facts.keys()].sort()) if (!keep?.has(key)) ops.push({ op: 'delete', type, key });
  }
  return ops;
}
