import { afterAll, describe, expect, inject, it } from 'vitest';
import { Cluster, ADMIN } from '../src/cluster.js';
import { startWriters } from '../src/load-writers.js';
import { client } from '../src/http.js';
import { SOAK_SCALE, sleep, waitUntil } from '../src/wait.js';

describe('fault: kill -9 of a server replica under concurrent writers', () => {
  const cluster = new Cluster(inject('redisUrl'));
  afterAll(() => cluster.stop());

  it('agents move to the surviving replica; nothing is lost, duplicated or reordered', async () => {
    const [r1, r2] = await cluster.startServers(2);
    const agents = await Promise.all([0, 1, 2, 3].map((i) => cluster.startAgent(`k${i}`, i % 2 === 0 ? [r1!.url, r2!.url] : [r2!.url, r1!.url])));
    await Promise.all(agents.map((a) => cluster.ready(a)));

    const writers = startWriters({ urls: [r1!.url, r2!.url], env: cluster.env, token: ADMIN, writers: 3 });
    await waitUntil(() => writers.count >= 150 * SOAK_SCALE, 'writes before the crash', 20_000 * SOAK_SCALE);
    r1!.child.kill('SIGKILL');
    const atCrash = writers.count;
    await waitUntil(() => writers.count >= atCrash + 150 * SOAK_SCALE, 'writes after the crash', 20_000 * SOAK_SCALE);
    await sleep(200);
    const stats = await writers.stop();

    expect(stats.statuses[500] ?? 0).toBe(0);
    const result = await cluster.check(stats.records, r2!.url);
    for (const a of agents) expect((await client(a.url).get('/v1/status')).body.server).toBe(new URL(r2!.url).origin);
    expect(result.changesChecked).toBeGreaterThan(4 * 250 * SOAK_SCALE);
    console.log(`[replica-crash] ${JSON.stringify({ ...result, writes: stats.records.length, connectionErrors: stats.connectionErrors })}`);
  });
});
