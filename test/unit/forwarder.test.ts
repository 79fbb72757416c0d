import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { PRODUCER_WINDOW, type Op } from '@factsync/shared';
import { Forwarder, type WriteOptions } from '../../pdp-agent/src/forwarder.js';
import type { ServerClient } from '../../pdp-agent/src/server-client.js';

interface Sent {
  path: string;
  id: string;
  seq: number;
  writes: number;
  answer: (status: number, body: unknown) => void;
}

/** A server that holds every request until the test answers it. */
function heldServer() {
  const sent: Sent[] = [];
  const client = {
    request: (_m: string, path: string, o: { headers: Record<string, string>; body: { writes?: unknown[] } }) => new Promise((resolve) => {
      sent.push({
        path, id: o.headers['x-producer-id']!, seq: Number(o.headers['x-producer-seq']), writes: o.body.writes?.length ?? 1,
        answer: (status, body) => resolve({ status, body, headers: new Headers() }),
      });
    }),
  } as unknown as ServerClient;
  const forwarder = new Forwarder({
    client, env: 'e', agentId: 'agent-1', preferred: () => new URL('http://x'), appliedIn: () => 0, heardEpoch: () => undefined,
    waitApplied: async () => true, log: pino({ level: 'silent' }),
  });
  return { sent, forwarder };
}

const ops = (k: string): Op[] => [{ op: 'upsert', type: 'doc', key: k, value: {} }];
const local: WriteOptions = { waitFor: { kind: 'local' }, timeoutMs: 0, policy: 'ignore' };
const remote: WriteOptions = { waitFor: { kind: 'all' }, timeoutMs: 1000, policy: 'ignore' };
const tick = () => new Promise((r) => setTimeout(r, 10));

describe('forwarder', () => {
  it('local writes that queue behind the request in flight go as one batch with consecutive numbers; each gets its own answer', async () => {
    const { sent, forwarder } = heldServer();
    const first = forwarder.write(ops('a'), local);
    await tick();
    expect(sent).toMatchObject([{ path: '/v1/envs/e/writes', seq: 1, writes: 1 }]);
    const rest = ['b', 'c', 'd'].map((k) => forwarder.write(ops(k), local));
    await tick();
    expect(sent.length).toBe(1); // one in flight at a time
    sent[0]!.answer(200, { results: [{ version: 7, epoch: 'ep' }] });
    expect((await first).version).toBe(7);
    await tick();
    expect(sent[1]).toMatchObject({ path: '/v1/envs/e/writes', seq: 2, writes: 3, id: sent[0]!.id });
    // One refused for itself: only it fails.
    sent[1]!.answer(200, { results: [{ version: 8, epoch: 'ep' }, { error: 'invalid_request', message: 'writes[1]: bad' }, { version: 9, epoch: 'ep' }] });
    const settled = await Promise.allSettled(rest);
    expect(settled[0]).toMatchObject({ status: 'fulfilled', value: { version: 8, epoch: 'ep' } });
    expect(settled[1]).toMatchObject({ status: 'rejected', reason: { code: 'invalid_request', message: 'writes[1]: bad', status: 400 } });
    expect(settled[2]).toMatchObject({ status: 'fulfilled', value: { version: 9, epoch: 'ep' } });
  });

  it('a batch too large together (413) goes again write by write, each with its own number', async () => {
    const { sent, forwarder } = heldServer();
    const first = forwarder.write(ops('a'), local);
    await tick();
    const rest = ['b', 'c'].map((k) => forwarder.write(ops(k), local));
    sent[0]!.answer(200, { results: [{ version: 1, epoch: 'ep' }] });
    await first;
    await tick();
    expect(sent[1]).toMatchObject({ seq: 2, writes: 2 });
    sent[1]!.answer(413, { error: 'payload_too_large', message: 'body too large' });
    await tick();
    expect(sent[2]).toMatchObject({ seq: 2, writes: 1 });
    sent[2]!.answer(200, { results: [{ version: 2, epoch: 'ep' }] });
    await tick();
    expect(sent[3]).toMatchObject({ seq: 3, writes: 1 });
    sent[3]!.answer(413, { error: 'payload_too_large', message: 'still too large alone' });
    const settled = await Promise.allSettled(rest);
    expect(settled[0]).toMatchObject({ status: 'fulfilled', value: { version: 2, epoch: 'ep' } });
    expect(settled[1]).toMatchObject({ status: 'rejected', reason: { code: 'payload_too_large' } });
  });

  it('a 503 is retried with the same numbers', async () => {
    const { sent, forwarder } = heldServer();
    const w = forwarder.write(ops('a'), local);
    await tick();
    sent[0]!.answer(503, { error: 'store_unavailable', message: 'later' });
    await new Promise((r) => setTimeout(r, 400));
    expect(sent.length).toBe(2);
    expect(sent[1]!.seq).toBe(sent[0]!.seq);
    sent[1]!.answer(200, { results: [{ version: 3, epoch: 'ep', replayed: true }] });
    expect((await w).version).toBe(3);
  });

  it('holds new numbers while the oldest unanswered write would fall out of the producer window', async () => {
    const { sent, forwarder } = heldServer();
    const writes = Array.from({ length: PRODUCER_WINDOW + 40 }, (_, i) => forwarder.write(ops(`k${i}`), remote));
    await tick();
    // Numbers 1..WINDOW went out; the rest wait for number 1.
    expect(sent.map((s) => s.seq)).toEqual(Array.from({ length: PRODUCER_WINDOW }, (_, i) => i + 1));
    expect(sent.every((s) => s.path === '/v1/envs/e/facts' && s.id === sent[0]!.id && /^agent-1\./.test(s.id))).toBe(true);
    // Answering a later one frees nothing: the oldest is still open.
    sent.find((s) => s.seq === 5)!.answer(200, { version: 5, epoch: 'ep' });
    await tick();
    expect(sent.length).toBe(PRODUCER_WINDOW);
    // Answering the oldest lets exactly one more out.
    sent.find((s) => s.seq === 1)!.answer(200, { version: 1, epoch: 'ep' });
    await tick();
    expect(sent.length).toBe(PRODUCER_WINDOW + 1);
    expect(sent.at(-1)!.seq).toBe(PRODUCER_WINDOW + 1);
    while (sent.length < PRODUCER_WINDOW + 40 || sent.some((s) => s.writes > 0)) {
      for (const s of sent) if (s.writes > 0) (s.answer(200, { version: s.seq, epoch: 'ep' }), (s.writes = 0));
      await tick();
    }
    expect((await Promise.all(writes)).map((w) => w.version)).toEqual(Array.from({ length: PRODUCER_WINDOW + 40 }, (_, i) => i + 1));
    // A caller's own Idempotency-Key travels as it is, without a number.
    const own = forwarder.write(ops('mine'), { ...local, idempotencyKey: 'mine' });
    await tick();
    expect(sent.at(-1)).toMatchObject({ path: '/v1/envs/e/facts' });
    expect(sent.at(-1)!.seq).toBeNaN();
    sent.at(-1)!.answer(200, { version: 500, epoch: 'ep' });
    expect((await own).version).toBe(500);
  });
});
