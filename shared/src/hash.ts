import { createHash } from 'node:crypto';

/**
 * A canonical digest of a fact set, independent of insertion order and of key
 * order inside values, so an agent's state can be compared with a server snapshot.
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

export function factsDigest(facts: Iterable<{ type: string; key: string; value: unknown }>): string {
  const lines: string[] = [];
  for (const f of facts) lines.push(`${f.type}\u0000${f.key}\u0000${canonicalJson(f.value)}`);
  lines.sort();
  const h = createHash('sha256');
  for (const l of lines) h.update(l).update('\n');
  return h.digest('hex');
}
