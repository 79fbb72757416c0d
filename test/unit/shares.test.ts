import { describe, expect, it } from 'vitest';
import { GENESIS_ID, chainId, scopeOf, type Change, type Op } from '@factsync/shared';
import { ShareStream } from '../../server/src/ws/shares.js';
import type { ChangeBatch } from '../../server/src/broadcast/env-feed.js';

const up = (type: string, key: string, value: Record<string, unknown>): Op => ({ op: 'upsert', type, key, value });

function batchOf(opsByVersion: Op[][]): ChangeBatch {
  let prev = GENESIS_ID;
  const changes = opsByVersion.map((ops, i) => {
    const c: Change = { version: i + 1, ts: 't', ops, id: chainId(prev, i + 1, 't', JSON.stringify(ops)) };
    prev = c.id;
    return { version: c.version, json: JSON.stringify(c) };
  });
  return { first: 1, last: changes.length, changes, frame: Buffer.from('') };
}

describe('shares of a live batch (scoped sessions)', () => {
  it('are built once per scope however many sessions take them, from one parse of the batch', () => {
    const batch = batchOf([
      [up('role_assignment', 'u/r/acme', { user: 'u', role: 'r', tenant: 'acme' })],
      [up('role_assignment', 'u/r/globex', { user: 'u', role: 'r', tenant: 'globex' })],
      [up('role_assignment', 'v/r/globex', { user: 'v', role: 'r', tenant: 'globex' })],
    ]);
    const acme = [1, 2, 3].map(() => new ShareStream(scopeOf({ tenants: ['acme'] })!));
    const globex = new ShareStream(scopeOf({ tenants: ['globex'] })!);
    const frames = acme.map((s) => s.frameOfBatch(batch));
    const parsed = batch.parsed;
    expect(parsed).toHaveLength(3);
    globex.frameOfBatch(batch);
    expect(batch.parsed).toBe(parsed); // parsed once
    expect(batch.shares?.size).toBe(2); // one share per scope
    expect(frames[1]).toBe(frames[0]);
    // acme: version 1 with its op, then versions 2-3 as one run without ops.
    const sent = (JSON.parse(frames[0]!) as { changes: Change[] }).changes;
    expect(sent.map((c) => [c.from ?? c.version, c.version, c.ops.length])).toEqual([[1, 1, 1], [2, 3, 0]]);
    expect(sent[1]!.prev).toBe(sent[0]!.id);
  });
});
