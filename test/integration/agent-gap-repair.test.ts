import { afterEach, describe, expect, it } from 'vitest';
import { FakeServer } from '../src/fake-server.js';
import { startAgent } from '../src/inproc.js';
import { waitUntil } from '../src/wait.js';

import { chainedHistory } from '../src/chain.js';

const change = chainedHistory((v) => [{ op: 'upsert', type: 'doc', key: `k${v}`, value: { v } }]);

/** The agent against a server that skips versions: it must detect the gap, repair it, and never apply out of order. */
describe('agent gap detection and repair', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of closers.reverse()) await c();
    closers.length = 0;
  });

  async function setup(onHello: (ws: import('ws').WebSocket) => void) {
    const fake = new FakeServer((ws) => onHello(ws));
    const url = await fake.listen();
    closers.push(() => fake.close());
    const applied: number[] = [];
    const agent = await startAgent(url, { options: { onApplied: (c) => applied.push(c.version) } });
    closers.push(() => agent.close());
    return { fake, agent, applied };
  }

  it('repairs a skipped version from the log, holding later versions until then', async () => {
    const { fake, agent, applied } = await setup((ws) => {
      ws.send(JSON.stringify({ type: 'welcome', head: 0, epoch: 'ep' }));
      ws.send(JSON.stringify({ type: 'snapshot', version: 0, epoch: 'ep', facts: [] }));
      ws.send(FakeServer.changesFrame([change(1)]));
      ws.send(FakeServer.changesFrame([change(3), change(4)])); // 2 never comes on the socket
    });
    fake.changes = (after) => ({ status: 200, body: { head: 4, epoch: 'ep', changes: [change(after + 1)] } });
    await waitUntil(() => agent.store.version === 4, 'agent at 4');
    expect(applied).toEqual([1, 2, 3, 4]);
    expect(fake.httpCalls.some((c) => c.includes('/changes?after=1'))).toBe(true);
    await waitUntil(() => fake.acks().includes(4), 'ack of 4');
    expect(Math.max(...fake.acks())).toBeLessThanOrEqual(4);
    expect((await agent.metrics.gaps.get()).values[0]?.value).toBe(1);
  });

  it('falls back to a snapshot when the log answers 410', async () => {
    const { fake, agent, applied } = await setup((ws) => {
      ws.send(JSON.stringify({ type: 'welcome', head: 0, epoch: 'ep' }));
      ws.send(JSON.stringify({ type: 'snapshot', version: 0, epoch: 'ep', facts: [] }));
      ws.send(FakeServer.changesFrame([change(1), change(9)]));
    });
    fake.changes = () => ({ status: 410, body: { error: 'log_truncated', message: 'gone', head: 9 } });
    fake.snapshot = () => ({ version: 8, epoch: 'ep', id: change(8).id, facts: [{ type: 'doc', key: 'from-snapshot', value: {} }] });
    await waitUntil(() => agent.store.version === 9, 'agent at 9');
    expect(applied).toEqual([1, 9]);
    expect(agent.store.get('doc', 'from-snapshot')).toBeDefined();
    expect(agent.store.get('doc', 'k1')).toBeUndefined(); // replaced by the snapshot
    expect(agent.status().snapshots_applied).toBe(2);
  });

  it('refuses a /changes or /snapshot reply that is not one (a proxy\'s HTML page, wrong shapes): nothing of it is applied or acked', async () => {
    const replies: { status: number; body?: unknown; raw?: string }[] = [
      { status: 200, raw: '<html><body><h1>502 Bad Gateway</h1></body></html>' },
      { status: 200, body: { head: 3, epoch: 'ep', changes: [{ version: 2, ops: 'upsert everything' }] } },
      { status: 200, body: { head: 3, epoch: 'ep', changes: [{ ...change(2), version: 'two' }] } },
      { status: 200, body: { changes: [change(2)] } },
      { status: 200, body: [change(2)] },
    ];
    for (const reply of replies) {
      let hellos = 0;
      const { fake, agent, applied } = await setup((ws) => {
        hellos++;
        ws.send(JSON.stringify({ type: 'welcome', head: 0, epoch: 'ep' }));
        ws.send(JSON.stringify({ type: 'snapshot', version: 0, epoch: 'ep', facts: [] }));
        if (hellos === 1) ws.send(FakeServer.changesFrame([change(1), change(3)]));
      });
      fake.changes = () => reply;
      // The bad reply makes the agent start a new session instead of applying it.
      await waitUntil(() => hellos >= 2, `a new session after ${JSON.stringify(reply).slice(0, 60)}`);
      expect(applied).toEqual([1]);
      expect(agent.store.get('doc', 'k2')).toBeUndefined();
      expect(fake.acks().every((v) => v <= 1)).toBe(true);
      await agent.close();
      await fake.close();
      closers.length = 0;
    }
    // A 410 sends the agent to the snapshot; one that is not one is refused the same way.
    let hellos = 0;
    const { fake, agent } = await setup((ws) => {
      hellos++;
      ws.send(JSON.stringify({ type: 'welcome', head: 0, epoch: 'ep' }));
      ws.send(JSON.stringify({ type: 'snapshot', version: 0, epoch: 'ep', facts: [] }));
      if (hellos === 1) ws.send(FakeServer.changesFrame([change(1), change(9)]));
    });
    fake.changes = () => ({ status: 410, body: { error: 'log_truncated', message: 'gone', head: 9 } });
    fake.snapshot = () => ({ raw: '<html>maintenance</html>' });
    await waitUntil(() => hellos >= 2, 'a new session after an HTML snapshot');
    // What the new session sent (the fake's empty snapshot at 0), never 9 from a page that was not a snapshot.
    expect(agent.store.version).toBeLessThan(9);
    expect(agent.store.get('doc', 'k9')).toBeUndefined();
    expect(fake.acks().every((v) => v <= 1)).toBe(true);
  });

  it('never acks a version the socket did not deliver, and drops a server that sends garbage', async () => {
    let hellos = 0;
    const { fake, agent } = await setup((ws) => {
      hellos++;
      ws.send(JSON.stringify({ type: 'welcome', head: 0, epoch: 'ep' }));
      ws.send(JSON.stringify({ type: 'snapshot', version: 0, epoch: 'ep', facts: [] }));
      if (hellos === 1) ws.send('{"type":"changes","changes":[{"version":"one"}]}');
    });
    await waitUntil(() => hellos >= 2, 'the agent to reconnect after the bad frame');
    expect(agent.store.version).toBe(0);
    expect(fake.acks().every((v) => v === 0)).toBe(true);
  });
});
