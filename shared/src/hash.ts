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

const MOD = 1n << 256n;
const factLineHash = (type: string, key: string, value: unknown): bigint =>
  BigInt(`0x${createHash('sha256').update(`${type}\u0000${key}\u0000${canonicalJson(value)}`).digest('hex')}`);

/**
 * An order-independent hash of a fact set that updates in O(1) per op (a sum of
 * per-fact hashes modulo 2^256), so an agent can record the hash of its state
 * after every version and a checker can compare it with a replay of the log.
 */
export class IncrementalHash {
  private sum = 0n;

  add(type: string, key: string, value: unknown): void {
    this.sum = (this.sum + factLineHash(type, key, value)) % MOD;
  }

  remove(type: string, key: string, value: unknown): void {
    this.sum = (this.sum - factLineHash(type, key, value) + MOD) % MOD;
  }

  reset(): void {
    this.sum = 0n;
  }

  hex(): string {
    return this.sum.toString(16).padStart(64, '0');
  }
}
