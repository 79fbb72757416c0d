import { factField, type Change, type Fact, type HeadReply } from '@factsync/shared';
import { FactsyncClientError } from './errors.js';
import type { FactsyncServerClient } from './server-client.js';

/** A part of an env: every fact, the facts of one type, or those of one type whose value names one tenant. */
export interface Scope {
  type?: string;
  tenant?: string;
}

export const inScope = (s: Scope, type: string, value: Record<string, unknown> | undefined): boolean =>
  (s.type === undefined || s.type === type) && (s.tenant === undefined || value?.tenant === s.tenant);

/** Where a scan of a scope started and ended: replaying the log between them over the scan makes it exact. */
export interface ScanBounds {
  from: HeadReply;
  to: { version: number; epoch: string | null; id: string; count: number };
}

/**
 * The facts of a scope page by page (the server's fuzzy scan: a fact present
 * throughout comes at least once, maybe twice; one written meanwhile may come
 * with any value or not at all), then the bounds to replay between. Neither
 * side holds the scope: the server reads one page at a time. Each page comes
 * with the env's fact count (for progress).
 */
export async function* scanScope(server: FactsyncServerClient, scope: Scope, pageSize = 2000): AsyncGenerator<{ facts: Fact[]; envCount: number }, ScanBounds> {
  const from = await server.head();
  let cursor: string | undefined;
  for (;;) {
    const page = await server.factsPage({ ...scope, cursor, limit: pageSize });
    if (page.facts.length > 0) yield { facts: page.facts, envCount: page.count };
    if (page.next_cursor === null) return { from, to: { version: page.version, epoch: page.epoch, id: page.id, count: page.count } };
    cursor = page.next_cursor;
  }
}

/**
 * What the log between `bounds` did to the scope: for each fact of the scope
 * it touched, its value at `bounds.to` (null = not in the scope there). Bounded
 * by what was written during the scan, not by the scope.
 */
export async function replayBetween(server: FactsyncServerClient, scope: Scope, bounds: ScanBounds): Promise<Map<string, Fact | null>> {
  const touched = new Map<string, Fact | null>();
  if (bounds.to.epoch !== bounds.from.epoch && bounds.from.epoch !== null) {
    throw new FactsyncClientError('history_rewritten', 409, 'the store was reset while the scope was read (another epoch); read it again');
  }
  let at = bounds.from.version;
  while (at < bounds.to.version) {
    // Only the scope's type travels: a 1% reconcile of one type need not download the others' ops.
    const page = await server.changesPage(at, 1000, scope.type !== undefined ? [scope.type] : undefined);
    if (page.changes.length === 0) break;
    for (const c of page.changes as Change[]) {
      if (c.version > bounds.to.version) return touched;
      for (const op of c.ops) {
        if (scope.type !== undefined && op.type !== scope.type) continue;
        const field = factField(op.type, op.key);
        const value = op.op === 'upsert' ? (op.value as Record<string, unknown>) : undefined;
        touched.set(field, op.op === 'upsert' && inScope(scope, op.type, value) ? { type: op.type, key: op.key, value: value! } : null);
      }
      at = c.version;
    }
  }
  return touched;
}

/** JSON with object keys in order: two values are equal when their canonical texts are. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}
