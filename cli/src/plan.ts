import { randomBytes } from 'node:crypto';
import type { Op } from '@factsync/shared';
import type { CliContext } from './context.js';
import { withRetry } from './retry.js';

/** One op of a plan and why it is there. */
export interface Planned {
  op: Op;
  was: 'missing' | 'different' | 'extra';
}

/**
 * Writes a plan as one version when it fits one write (the server's
 * MAX_OPS_PER_WRITE and BODY_LIMIT_BYTES, read from /v1/limits), else in the
 * fewest writes that fit, in order, saying so: versions are atomic one by
 * one, so a reader between them sees part of the plan. Each write carries an
 * idempotency key, so a retry after a lost answer applies nothing twice.
 */
export async function writePlan(c: CliContext, ops: readonly Op[], what: string): Promise<{ writes: number; versions: [number, number] }> {
  const limits = await c.server.limits();
  // Room for the envelope and JSON escaping differences: a part is at most 90% of the body limit.
  const maxBytes = Math.floor(limits.body_limit_bytes * 0.9);
  const parts: Op[][] = [];
  let part: Op[] = [];
  let bytes = 10;
  for (const op of ops) {
    const size = JSON.stringify(op).length + 1;
    if (part.length > 0 && (part.length >= limits.max_ops_per_write || bytes + size > maxBytes)) {
      parts.push(part);
      part = [];
      bytes = 10;
    }
    part.push(op);
    bytes += size;
  }
  if (part.length > 0) parts.push(part);
  if (parts.length > 1) {
    c.err.write(`the ${what} has ${ops.length.toLocaleString('en-US')} ops, more than one write may carry (${limits.max_ops_per_write.toLocaleString('en-US')} ops, ${limits.body_limit_bytes.toLocaleString('en-US')} bytes): writing it as ${parts.length} consecutive versions\n`);
  }
  const run = randomBytes(8).toString('hex');
  const versions: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const r = await withRetry(() => c.server.write(parts[i]!, { idempotencyKey: `cli-${run}-${i}` }));
    versions.push(r.version);
  }
  return { writes: parts.length, versions: [versions[0]!, versions[versions.length - 1]!] };
}
