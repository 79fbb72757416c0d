import { Redis } from 'ioredis';
import { startRedisServer } from './redis.js';
import { ChaosProxy } from './chaos-proxy.js';
import { waitUntil } from './wait.js';

/**
 * A Redis master with a replica in sync, reached through a proxy: `url` is
 * what a server is given. `freeze()` stops replication after everything so
 * far reached the replica (later writes go to the master only); `failover()`
 * points the proxy at the replica, which then lacks those writes but keeps
 * the epoch: the lagging-replica failover of invariant 9.
 */
export async function laggingReplicaPair(closers: (() => Promise<unknown> | unknown)[]): Promise<{ url: string; freeze: () => Promise<void>; failover: () => void }> {
  const master = await startRedisServer();
  closers.push(() => master.stop());
  const replica = await startRedisServer();
  closers.push(() => replica.stop());
  const m = new Redis(master.url);
  const r = new Redis(replica.url);
  closers.push(() => { m.disconnect(); r.disconnect(); });
  await r.call('REPLICAOF', '127.0.0.1', String(master.port));
  await waitUntil(async () => (await r.info('replication')).includes('master_link_status:up'), 'replica in sync');
  const proxy = new ChaosProxy(master.port);
  await proxy.listen();
  closers.push(() => proxy.close());
  return {
    url: `redis://127.0.0.1:${proxy.port}`,
    freeze: async () => {
      if (Number(await m.call('WAIT', 1, 5000)) !== 1) throw new Error('the replica did not acknowledge the writes so far');
      await r.call('REPLICAOF', 'NO', 'ONE');
    },
    failover: () => proxy.retarget(replica.port),
  };
}
