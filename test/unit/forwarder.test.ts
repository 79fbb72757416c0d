import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { PRODUCER_WINDOW } from '@factsync/shared';
import { Forwarder } from '../../pdp-agent/src/forwarder.js';
import type { ServerClient } from '../../pdp-agent/src/server-client.js';

/**
 * The forwarder's producer sequence: the server remembers only a producer's
 * last PRODUCER_WINDOW numbers, so the forwarder never lets its newest number
 * run that far past its oldest unanswered write (which may still be retried).
 */
describe('forwarder producer window', () => {
  it('holds new writes while the oldest unanswered one would fall out of the window', async () => {
    const held: { seq: number; answer: () => void }[] = [];
    const seen: { id: string; seq: number }[] = [];
    const client = {
      request: (_m: string, _p: string, o: { headers: Record<string, string> }) => new Promise((resolve) => {
        const seq = Number(o.headers['x-producer-seq']);
        seen.push({ id: o.headers['x-producer-id']!, seq });
        held.push({ seq, answer: () => resolve({ status: 200, body: { version: seq } }) });
      }),
    } as unknown as ServerClient;
    const f = new Forwarder({
      client, env: 'e', agentId: 'agent-1', preferred: () => new URL('http://x'), applied: () => 0,
      waitApplied: async () => true, log: pino({ level: 'silent' }),
    });
    const writes = Array.from({ length: PRODUCER_WINDOW + 40 }, () =>
      f.write([{ op: 'upsert', type: 'doc', key: 'k', value: {} }], { waitFor: { kind: 'local' }, timeoutMs: 0, policy: 'ignore' }));
    await new Promise((r) => setTimeout(r, 20));
    // Numbers 1..WINDOW went out; the rest wait for number 1.
    expect(seen.map((s) => s.seq)).toEqual(Array.from({ length: PRODUCER_WINDOW }, (_, i) => i + 1));
    expect(new Set(seen.map((s) => s.id)).size).toBe(1);
    expect(seen[0]!.id).toMatch(/^agent-1\./);
    // Answering a later one frees nothing: the oldest is still open.
    held.find((h) => h.seq === 5)!.answer();
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.length).toBe(PRODUCER_WINDOW);
    // Answering the oldest lets exactly one more out.
    held.find((h) => h.seq === 1)!.answer();
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.map((s) => s.seq).at(-1)).toBe(PRODUCER_WINDOW + 1);
    expect(seen.length).toBe(PRODUCER_WINDOW + 1);
    for (;;) {
      for (const h of held.splice(0)) h.answer();
      await new Promise((r) => setTimeout(r, 10));
      if (seen.length === PRODUCER_WINDOW + 40 && held.length === 0) break;
    }
    const versions = (await Promise.all(writes)).map((w) => w.version);
    expect(versions).toEqual(Array.from({ length: PRODUCER_WINDOW + 40 }, (_, i) => i + 1));
    // A caller's own Idempotency-Key travels as it is, without a sequence number.
    const own = f.write([{ op: 'delete', type: 'doc', key: 'k' }], { waitFor: { kind: 'local' }, timeoutMs: 0, policy: 'ignore', idempotencyKey: 'mine' });
    await new Promise((r) => setTimeout(r, 10));
    expect(seen.at(-1)!.seq).toBeNaN();
    held.splice(0).forEach((h) => h.answer());
    await own;
  });
});
