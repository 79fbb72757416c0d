import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Applier, LocalStore } from '@factsync/pdp-agent';
import { chainId, type ServerMessage } from '@factsync/shared';
import { SyncEngine } from '../../pdp-agent/src/sync-engine.js';
import { AppliedWaiters } from '../../pdp-agent/src/applied-waiters.js';
import { ApplyGate } from '../../pdp-agent/src/apply-gate.js';
import { AgentMetrics } from '../../pdp-agent/src/metrics.js';

function engine() {
  const store = new LocalStore();
  const applier = new Applier(store);
  const metrics = new AgentMetrics({ applied: () => store.version, head: () => 0, connected: () => true, stale: () => false, facts: () => store.size, reconnects: () => 0 });
  const restarts: string[] = [];
  const link = { send: () => true, restart: (why: string) => void restarts.push(why), markHealthy: () => undefined, serverUrl: new URL('http://127.0.0.1:1') };
  const e = new SyncEngine({
    env: 'e', agentId: 'a', store, applier, client: undefined as never, waiters: new AppliedWaiters(), metrics, log: pino({ level: 'silent' }), gate: new ApplyGate(),
    link: () => link, onDirty: () => undefined,
  });
  return { store, e, restarts, on: (m: unknown) => e.onMessage(m as ServerMessage) };
}
const fact = (key: string) => ({ type: 'doc', key, value: {} });

describe('SyncEngine: snapshots in several frames (invariant 2)', () => {
  it('applies a snapshot only once its last frame arrived, and drops the frames of a socket that died', () => {
    const { store, e, on } = engine();
    e.hello();
    on({ type: 'welcome', head: 5, epoch: 'ep', snapshot: true });
    on({ type: 'snapshot', version: 5, epoch: 'ep', id: 'i5', facts: [fact('a')], last: false });
    expect(store.size).toBe(0);
    expect(store.version).toBe(0);

    // The socket dies mid-snapshot; the next one sends a whole snapshot of a later version.
    e.disconnected();
    e.hello();
    on({ type: 'welcome', head: 6, epoch: 'ep', snapshot: true });
    on({ type: 'snapshot', version: 6, epoch: 'ep', id: 'i6', facts: [fact('b')], last: false });
    on({ type: 'snapshot', version: 6, epoch: 'ep', id: 'i6', facts: [fact('c')], last: true });
    expect(store.version).toBe(6);
    expect([...store.all()].map((f) => f.key).sort()).toEqual(['b', 'c']); // nothing of the dead socket's frames

    // A snapshot in one frame (no `last`) is whole.
    on({ type: 'snapshot', version: 7, epoch: 'ep', id: 'i7', facts: [fact('d')] });
    expect([...store.all()].map((f) => f.key)).toEqual(['d']);
  });
});

describe('SyncEngine: a scanned snapshot with its replay (invariants 2 and 9)', () => {
  const ts = '2026-11-26T00:00:00.000Z';
  const change = (prev: string, version: number, key: string) => {
    const ops = [{ op: 'upsert', type: 'doc', key, value: { version } }];
    return { version, id: chainId(prev, version, ts, JSON.stringify(ops)), ts, ops };
  };

  it('applies facts and replay as one snapshot at the last replayed version', () => {
    const { store, e, on, restarts } = engine();
    e.hello();
    on({ type: 'welcome', head: 7, epoch: 'ep', snapshot: true });
    const c6 = change('i5', 6, 'b');
    const c7 = change(c6.id, 7, 'a');
    on({ type: 'snapshot', version: 5, epoch: 'ep', id: 'i5', facts: [fact('a')], last: false });
    on({ type: 'snapshot', version: 5, epoch: 'ep', id: 'i5', facts: [], changes: [c6, c7], last: true, count: 2 });
    expect(restarts).toEqual([]);
    expect(store.version).toBe(7);
    expect(store.lastId).toBe(c7.id);
    expect(store.get('doc', 'a')?.value).toEqual({ version: 7 });
    expect(store.size).toBe(2);
  });

  it('never applies a replay that does not continue the snapshot\'s chain: the state stays, the link restarts', () => {
    const { store, e, on, restarts } = engine();
    e.hello();
    on({ type: 'welcome', head: 2, epoch: 'ep', snapshot: true });
    on({ type: 'snapshot', version: 2, epoch: 'ep', id: 'i2', facts: [fact('old')] });
    expect(store.version).toBe(2);
    on({ type: 'welcome', head: 7, epoch: 'ep', snapshot: true });
    const forged = change('not-i5', 6, 'b'); // chained to another history
    on({ type: 'snapshot', version: 5, epoch: 'ep', id: 'i5', facts: [fact('a')], changes: [forged], last: true });
    expect(restarts.length).toBe(1);
    expect(store.version).toBe(2);
    expect([...store.all()].map((f) => f.key)).toEqual(['old']);
    // A gap in the replay is refused the same way.
    const c6 = change('i5', 6, 'b');
    on({ type: 'snapshot', version: 5, epoch: 'ep', id: 'i5', facts: [fact('a')], changes: [change(c6.id, 7, 'c')], last: true });
    expect(restarts.length).toBe(2);
    expect(store.version).toBe(2);
  });
});
