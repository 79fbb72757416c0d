import { WELL_KNOWN_TYPES, type Op } from './facts.js';

/** Levenshtein distance, stopping early once it passes `max` (names are short). */
function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      best = Math.min(best, row[j]!);
    }
    if (best > max) return max + 1;
    prev = row;
  }
  return prev[b.length]!;
}

const known = new Set(WELL_KNOWN_TYPES);

/** The well-known type `type` is one edit away from, when it is not one itself ("users" → "user"). */
export function nearWellKnownType(type: string): string | undefined {
  if (known.has(type)) return undefined;
  return WELL_KNOWN_TYPES.find((k) => editDistance(type, k, 1) <= 1);
}

/**
 * Sentences about the custom types of a write that look like typos of
 * well-known ones. Any lower-case name is a valid custom type, so the write is
 * applied as sent; the warning says why the typed endpoints will not read it.
 */
export function typeWarnings(ops: readonly Op[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const op of ops) {
    if (seen.has(op.type)) continue;
    seen.add(op.type);
    const near = nearWellKnownType(op.type);
    if (near) out.push(`type "${op.type}" is not a well-known type but one edit from "${near}": it was written as a custom type, which decisions and the ${near} endpoints do not read; write "${near}" if that was meant`);
    if (out.length >= 8) break;
  }
  return out;
}
