import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Applier, LocalStore } from '@factsync/pdp-agent';
import type { ServerMessage } from '@factsync/shared';
import { SyncEngine } from '../../pdp-agent/src/sync-engine.js';
import { AppliedWaiters } from '../../pdp-agent/src/applied-waiters.js';
import { AgentMetrics } from '../../pdp-agent/src/metrics.js';

function engine() {
  const store = new LocalStore();
  const applier = new Applier(store);
  const metrics = new AgentMetrics({ applied: () => store.version, head: () => 0, connected: () => true, facts: () => store.size, reconnects: () => 0 });
  const link = { send: () => true, restart: () => undefined, markHealthy: () => undefined, serverUrl: new URL('http://127.0.0.1:1') };
  const e = new SyncEngine({
    env: 'e', agentId: 'a', store, applier, client: undefined as never, waiters: new AppliedWaiters(), metrics, log: pino({ level: 'silent' }),
    link: () => link, onDirty: () => undefined,
  });
  return { store, e, on: (m: unknown) => e.onMessage(m as ServerMessage) };
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
