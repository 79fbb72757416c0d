import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { StoreWatch } from '../../server/src/store/store-watch.js';
import { waitUntil } from '../src/wait.js';

/** A store whose ping answers, fails, or hangs (packets dropped: no error, no reply) as the test says. */
function fakeStore() {
  let mode: 'ok' | 'fail' | 'hang' = 'ok';
  return {
    set: (m: typeof mode) => (mode = m),
    ping: () => (mode === 'ok' ? Promise.resolve() : mode === 'fail' ? Promise.reject(new Error('connection refused')) : new Promise<void>(() => {})),
  };
}

describe('StoreWatch: a replica that loses its store closes its websockets once, and accepts again when it answers', () => {
  for (const how of ['fail', 'hang'] as const) {
    it(`a store whose ping ${how === 'fail' ? 'fails' : 'hangs'} is lost after STORE_LOST_MS, once, and reachable again after one answer`, async () => {
      const store = fakeStore();
      let lost = 0;
      const watch = new StoreWatch({ ping: store.ping, lostAfterMs: 200, log: pino({ level: 'silent' }), onLost: () => lost++ });
      try {
        await new Promise((r) => setTimeout(r, 400));
        expect(watch.health).toBe('reachable');
        store.set(how);
        const from = Date.now();
        await waitUntil(() => watch.health === 'lost', 'the store to count as lost', 10_000);
        // Not before the limit: a store that answers slowly now and then is not lost.
        expect(Date.now() - from).toBeGreaterThanOrEqual(150);
        await new Promise((r) => setTimeout(r, 500));
        expect(lost).toBe(1);
        store.set('ok');
        // A hung ping never settles: the watch must probe again rather than wait for it for ever.
        await waitUntil(() => watch.health === 'reachable', 'the store to count as reachable again', 10_000);
        expect(lost).toBe(1);
      } finally {
        watch.stop();
      }
    });
  }
});
