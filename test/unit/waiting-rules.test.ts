import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createMemoryStore } from '@factsync/server';
import { idOfChangeJson } from '@factsync/shared';
import { SyncIndex, evaluateSync, type AgentSyncState } from '../../server/src/control/waiting-rules.js';

const agent = (id: string, a: Partial<AgentSyncState>): AgentSyncState => ({ id, since: 0, applied: 0, present: true, ...a });

describe('evaluateSync (invariant 8)', () => {
  const agents = [
    agent('a', { applied: 10 }),
    agent('b', { applied: 4 }),
    agent('late', { since: 7 }), // joined after version 5 was written
    agent('gone', { applied: 9, present: false }), // its lease ended: vouches for nothing
  ];

  it('all: every present agent that was there when the version was written', () => {
    expect(evaluateSync(agents, 5, { kind: 'all' })).toEqual({ version: 5, synced: false, acked: ['a'], pending: ['b'] });
    expect(evaluateSync(agents, 4, { kind: 'all' })).toEqual({ version: 4, synced: true, acked: ['a', 'b'], pending: [] });
    expect(evaluateSync(agents, 8, { kind: 'all' }).pending).toEqual(['b', 'late']);
  });

  it('n and ids count only present agents that applied the version', () => {
    expect(evaluateSync(agents, 4, { kind: 'count', n: 2 }).synced).toBe(true);
    expect(evaluateSync(agents, 5, { kind: 'count', n: 2 }).synced).toBe(false);
    expect(evaluateSync(agents, 1, { kind: 'ids', ids: ['gone', 'a'] })).toEqual({ version: 1, synced: false, acked: ['a'], pending: ['gone'] });
    expect(evaluateSync(agents, 5, { kind: 'ids', ids: ['a', 'nobody'] })).toMatchObject({ synced: false, pending: ['nobody'] });
  });

  it('no agents: all is trivially synced', () => {
    expect(evaluateSync([], 3, { kind: 'all' }).synced).toBe(true);
  });
});

/**
 * The waiting rules against the store's registry under random interleavings of
 * connect, blip (unclean reconnect), replace (a twin with the same id), ack,
 * graceful leave and lease expiry. A reference model says what each agent's
 * current session has really applied and whether it has been present without
 * a break since each version was written; `synced` must never claim more.
 */
describe('property: synced never lies under connect/blip/replace/ack/expire', () => {
  type Op =
    | { k: 'write' }
    | { k: 'connect' | 'blip' | 'ack' | 'leave'; a: number }
    | { k: 'replace'; a: number; lag: number }
    | { k: 'expire' };
  const AGENTS = 3;
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.constant<Op>({ k: 'write' }),
    fc.record({ k: fc.constantFrom('connect' as const, 'blip' as const, 'ack' as const, 'leave' as const), a: fc.nat(AGENTS - 1) }),
    fc.record({ k: fc.constant('replace' as const), a: fc.nat(AGENTS - 1), lag: fc.nat(3) }),
    fc.constant<Op>({ k: 'expire' }),
  );

  it('holds for 150 random runs', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 60 }), async (ops) => {
      let clock = 1_000_000;
      const LEASE = 1000;
      const store = createMemoryStore({ logRetention: 1000, idempotencyTtlSeconds: 60, inlineChangeBytes: 0, now: () => clock });
      const env = 'p';
      const ids: string[] = [''];
      let head = 0;
      let sessions = 0;
      interface Model { session: string | null; live: boolean; applied: number; presentSinceHead: number | null; leaseUntil: number }
      const m: Model[] = Array.from({ length: AGENTS }, () => ({ session: null, live: false, applied: 0, presentSinceHead: null, leaseUntil: 0 }));
      const present = (x: Model) => x.live || x.leaseUntil >= clock;
      const epoch = (await store.ensureEpoch(env)).epoch;

      const open = async (i: number, applied: number) => {
        const session = `s${++sessions}`;
        const x = m[i]!;
        if (!present(x)) x.presentSinceHead = head;
        await store.openSession(env, { id: `a${i}`, session, replica: 'r', leaseMs: LEASE, addr: 'x', resume: { applied, epoch, appliedId: ids[applied]! } });
        Object.assign(x, { session, live: true, applied, leaseUntil: clock + LEASE });
      };

      for (const op of ops) {
        switch (op.k) {
          case 'write': {
            const w = await store.write(env, { ops: [{ op: 'upsert', type: 't', key: 'k', value: { v: head + 1 } }], ts: 't' });
            head = w.version;
            const page = await store.changes(env, head - 1, 1);
            ids.push(page.truncated ? '' : idOfChangeJson(page.changes[0]!.json)!);
            break;
          }
          case 'connect':
            if (!m[op.a]!.live) await open(op.a, m[op.a]!.applied);
            break;
          case 'blip': {
            const x = m[op.a]!;
            if (!x.live || !x.session) break;
            await store.endSession(env, `a${op.a}`, x.session, false, LEASE);
            x.live = false;
            x.leaseUntil = clock + LEASE;
            await open(op.a, x.applied);
            break;
          }
          case 'replace': {
            // A twin with the same id, behind by `lag`: its session becomes the current one.
            const x = m[op.a]!;
            await open(op.a, Math.max(0, x.applied - op.lag));
            break;
          }
          case 'ack': {
            const x = m[op.a]!;
            if (!x.live || !x.session) break;
            x.applied = head;
            await store.recordAcks(env, [{ id: `a${op.a}`, session: x.session, version: head, chainId: ids[head]! }]);
            break;
          }
          case 'leave': {
            const x = m[op.a]!;
            if (!x.live || !x.session) break;
            await store.endSession(env, `a${op.a}`, x.session, true, LEASE);
            Object.assign(x, { live: false, leaseUntil: 0, presentSinceHead: null });
            break;
          }
          case 'expire': {
            const live = m.flatMap((x, i) => (x.live && x.session ? [[`a${i}`, x.session] as const] : []));
            clock += LEASE + 1;
            await store.renewSessions(env, live, LEASE);
            for (const x of m) {
              if (x.live) x.leaseUntil = clock + LEASE;
              else if (x.leaseUntil < clock) x.presentSinceHead = null;
            }
            break;
          }
        }
        const records = await store.agents(env);
        for (let v = 1; v <= head; v++) {
          const all = evaluateSync(records, v, { kind: 'all' });
          for (const id of all.acked) expect(m[Number(id.slice(1))]!.applied, `acked ${id} for ${v}`).toBeGreaterThanOrEqual(v);
          if (!all.synced) continue;
          m.forEach((x, i) => {
            // Present without a break since before v was written: must have applied v in its current session.
            if (x.presentSinceHead !== null && x.presentSinceHead < v && present(x)) {
              expect(x.applied, `a${i} awaited for ${v} but synced was claimed`).toBeGreaterThanOrEqual(v);
            }
          });
        }
      }
      await store.close();
    }), { numRuns: 150 });
  });
});

describe('SyncIndex agrees with evaluateSync', () => {
  it('property: the same verdict for every rule over random registries', () => {
    const rec = fc.record({ since: fc.nat(20), applied: fc.nat(20), present: fc.boolean() });
    const waitFor = fc.oneof(
      fc.constant({ kind: 'all' as const }),
      fc.integer({ min: 1, max: 6 }).map((n) => ({ kind: 'count' as const, n })),
      fc.subarray(['a0', 'a1', 'a2', 'a3', 'a4', 'nobody'], { minLength: 1 }).map((ids) => ({ kind: 'ids' as const, ids })),
    );
    fc.assert(fc.property(fc.array(rec, { maxLength: 5 }), fc.integer({ min: 1, max: 21 }), waitFor, (rs, v, w) => {
      const agents = rs.map((r, i) => ({ id: `a${i}`, ...r }));
      const index = new SyncIndex(agents);
      expect(index.isSynced(v, w)).toBe(evaluateSync(agents, v, w).synced);
    }), { numRuns: 2000 });
  });
});
