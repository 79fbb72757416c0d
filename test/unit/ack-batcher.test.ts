import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createMemoryStore, type FactStore } from '@factsync/server';
import { AckBatcher } from '../../server/src/acks/ack-batcher.js';
import { waitUntil } from '../src/wait.js';

describe('AckBatcher', () => {
  it('coalesces acks per agent into one store call per tick, keeping the highest', async () => {
    const real = createMemoryStore({ logRetention: 10, idempotencyTtlSeconds: 60, inlineChangeBytes: 1000 });
    const calls: Map<string, number>[] = [];
    const store: FactStore = { ...real, recordAcks: async (env, acks) => { calls.push(new Map(acks)); await real.recordAcks(env, acks); } };
    const b = new AckBatcher(store, pino({ level: 'silent' }));
    b.add('e', 'a', 1);
    b.add('e', 'a', 3);
    b.add('e', 'a', 2);
    b.add('e', 'b', 5);
    await waitUntil(() => calls.length === 1, 'one flush');
    expect([...calls[0]!]).toEqual([['a', 3], ['b', 5]]);
  });

  it('keeps acks through store failures and records them once the store is back', async () => {
    const real = createMemoryStore({ logRetention: 10, idempotencyTtlSeconds: 60, inlineChangeBytes: 1000 });
    await real.connectAgent('e', { id: 'a', conn: 'c', replica: 'r', leaseMs: 60_000 });
    let failures = 2;
    const store: FactStore = {
      ...real,
      recordAcks: async (env, acks) => {
        if (failures-- > 0) throw new Error('store away');
        await real.recordAcks(env, acks);
      },
    };
    const b = new AckBatcher(store, pino({ level: 'silent' }), 20);
    b.add('e', 'a', 4);
    await new Promise((r) => setTimeout(r, 5));
    b.add('e', 'a', 7); // arrives while the first flush is failing
    await waitUntil(async () => (await real.agents('e'))[0]?.applied === 7, 'acks recorded after the failures');
    expect(failures).toBeLessThan(0);
    await b.close();
  });
});
