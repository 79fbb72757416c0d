import { afterAll, describe, expect, inject, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, ADMIN } from '../src/cluster.js';
import { startWriters, type WriteRecord } from '../src/load-writers.js';
import { AGENT, newEnv, startAgent, startServer } from '../src/inproc.js';
import { RawAgent } from '../src/raw-agent.js';
import { client, upsert } from '../src/http.js';
import { freePort } from '../src/ports.js';
import { sleep, waitUntil } from '../src/wait.js';

describe('fault: agents that stall, restart, or find their state file damaged', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('a stalled agent among 100 is cut off instead of delaying the others or growing memory, and catches up when it resumes', async () => {
    const server = await startServer({ env: { WS_MAX_BUFFERED_BYTES: String(256 * 1024) } });
    cleanups.push(() => server.close());
    const env = newEnv();
    const fast: RawAgent[] = [];
    for (let i = 0; i < 99; i++) {
      const a = await RawAgent.connect(server.url, AGENT, { type: 'hello', env, agent_id: `fast-${i}`, applied: 0 });
      a.autoAck = true;
      fast.push(a);
    }
    const stalled = await RawAgent.connect(server.url, AGENT, { type: 'hello', env, agent_id: 'stalled', applied: 0 });
    await Promise.all([...fast, stalled].map((a) => a.waitReceived(0)));
    const epoch = (await client(server.url, ADMIN).get(`/v1/envs/${env}/head`)).body.epoch;
    stalled.pause();

    const admin = client(server.url, ADMIN);
    const blob = 'x'.repeat(20_000);
    const cutOff = async () => ((await server.metrics.slowConsumers.get()).values[0]?.value ?? 0) > 0;
    let head = 0;
    // Write until the stalled agent is cut; the kernel's socket buffers absorb the first megabytes.
    for (let i = 0; i < 3000 && !(i % 10 === 0 && (await cutOff())); i++) {
      head = (await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', `d${i % 10}`, { i, blob })] })).body.version;
    }
    for (let i = 0; i < 5; i++) head = (await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', `after-${i}`, {})] })).body.version;
    expect(await cutOff()).toBe(true);
    expect((await server.metrics.slowConsumers.get()).values[0]?.value).toBe(1);
    // Every other agent has everything while the stalled one is still stalled.
    await Promise.all(fast.map((a) => a.waitReceived(head)));
    expect([...server.gateway.sessions].some((s) => s.agentId === 'stalled')).toBe(false);

    stalled.resume();
    await stalled.waitClosed();
    const got = stalled.contiguous();
    expect(got).toBeLessThan(head);
    const again = await RawAgent.connect(server.url, AGENT, { type: 'hello', env, agent_id: 'stalled', applied: got, epoch, applied_id: stalled.idOf(got) });
    await again.waitReceived(head);
    expect(again.messages.some((m) => m.type === 'snapshot')).toBe(false);
    expect(again.contiguousFrom(got)).toBe(head);
    for (const a of [...fast, again, stalled]) a.close();
  });

  it('a snapshot much larger than WS_MAX_BUFFERED_BYTES is not mistaken for a slow consumer, even with writes during it', async () => {
    const server = await startServer({ env: { WS_MAX_BUFFERED_BYTES: String(64 * 1024) } });
    cleanups.push(() => server.close());
    const env = newEnv();
    const admin = client(server.url, ADMIN);
    for (let i = 0; i < 8; i++) {
      await admin.post(`/v1/envs/${env}/facts`, { ops: Array.from({ length: 500 }, (_, j) => upsert('doc', `big-${i}-${j}`, { pad: 'x'.repeat(1000) })) });
    }
    const agent = await startAgent(server.url, { env: { AGENT_ENV: env, AGENT_ID: 'big' } });
    cleanups.push(() => agent.close());
    // Live writes while the ~4 MB snapshot drains.
    for (let i = 0; i < 30; i++) await admin.post(`/v1/envs/${env}/facts`, { ops: [upsert('doc', `live-${i}`, {})] });
    await waitUntil(() => agent.store.version === 38, 'agent at 38');
    expect((await server.metrics.slowConsumers.get()).values[0]?.value ?? 0).toBe(0);
    expect(agent.status()).toMatchObject({ snapshots_applied: 1, reconnects: 0 });
  });

  it('an agent that stops reading during its snapshot is cut off, not waited for forever', async () => {
    const server = await startServer({ env: { PING_INTERVAL_MS: '1000', LEASE_MS: '2100' } });
    cleanups.push(() => server.close());
    const env = newEnv();
    const admin = client(server.url, ADMIN);
    for (let i = 0; i < 20; i++) {
      await admin.post(`/v1/envs/${env}/facts`, { ops: Array.from({ length: 500 }, (_, j) => upsert('doc', `s-${i}-${j}`, { pad: 'y'.repeat(1000) })) });
    }
    const reader = await RawAgent.connect(server.url, AGENT);
    await waitUntil(() => server.gateway.sessions.size === 1, 'the reader\'s session');
    reader.pause();
    reader.send({ type: 'hello', env, agent_id: 'frozen', applied: 0 });
    // This server's only socket: cut either as a slow consumer (no bytes leave) or for missing pongs, whichever notices first on a busy machine.
    await waitUntil(() => server.gateway.sessions.size === 0, 'the frozen reader to be cut');
    reader.close();
  });

  it('restart with DATA_DIR resumes from its version (log or snapshot as the log allows); a damaged state file is never served', async () => {
    const cluster = new Cluster(inject('redisUrl'), { LOG_RETENTION: '40' });
    cleanups.push(() => cluster.stop());
    const [s] = await cluster.startServers(1);
    const writerUrl = s!.url;
    const start = () => cluster.startAgent('p1', [writerUrl], { PERSIST_INTERVAL_MS: '50' }, true);
    let agent = await start();
    const dataDir = agent.dataDir;
    await cluster.ready(agent);
    const records: WriteRecord[] = [];
    let round = 0;
    /** Concurrent writes until at least n more versions exist. */
    const write = async (n: number) => {
      const w = startWriters({ urls: [writerUrl], env: cluster.env, token: ADMIN, writers: 2, prefix: `r${round++}` });
      await waitUntil(() => w.count >= n, `${n} writes`);
      records.push(...(await w.stop()).records);
    };
    await write(50);
    expect(await agent.stop('SIGTERM')).toBe(0);
    await write(10); // while it is down, within the log's reach
    agent = await start(); // restore, then changes from the log
    // Caught up before more writes: start() returns once the agent listens (serving its restored
    // state), and 30 writes while a loaded machine is still connecting it would trim the log past
    // it, turning "resumes from the log" into a snapshot.
    const headNow = (await client(writerUrl, ADMIN).get(`/v1/envs/${cluster.env}/head`)).body.version as number;
    const restarted = agent;
    await waitUntil(async () => ((await client(restarted.url).get('/v1/status')).body.applied as number) >= headNow, 'the restarted agent to catch up from the log');
    await write(30);
    expect(await agent.stop('SIGTERM')).toBe(0);
    await write(120); // while it is down, beyond LOG_RETENTION=40
    agent = await start(); // restore, then a snapshot
    await write(20);
    const result = await cluster.check(records, writerUrl);
    expect(result.restores).toBe(2);
    expect(result.snapshots).toBe(2); // first start, and the fallback after the trimmed log
    console.log(`[agent-restart] ${JSON.stringify(result)}`);

    // Damage the state file: the agent must not serve it, even when it cannot reach a server.
    expect(await agent.stop('SIGTERM')).toBe(0);
    const file = join(dataDir, 'factsync-state.json');
    expect(existsSync(file)).toBe(true);
    const text = readFileSync(file, 'utf8');
    for (const damaged of [text.slice(0, Math.floor(text.length / 2)), text.replace('"doc"', '"dox"'), 'garbage']) {
      writeFileSync(file, damaged);
      const offline = await cluster.startAgent('p1', [`http://127.0.0.1:${await freePort()}`], {}, true);
      const status = (await client(offline.url).get('/v1/status')).body;
      expect(status.applied).toBe(0);
      expect((await client(offline.url).get('/v1/facts/doc/d1')).status).toBe(404);
      expect((await client(offline.url).get('/readyz')).status).toBe(503);
      expect(offline.lines.some((l) => l.includes('state file in DATA_DIR is unusable'))).toBe(true);
      await offline.stop('SIGTERM');
      cluster.agents.splice(cluster.agents.indexOf(offline), 1);
    }
    writeFileSync(file, 'garbage');
    const healed = await start();
    await cluster.ready(healed);
    const head = (await client(writerUrl, ADMIN).get(`/v1/envs/${cluster.env}/head`)).body.version;
    await waitUntil(async () => (await client(healed.url).get('/v1/status')).body.applied === head, 'healed agent at head');
    expect((await client(healed.url).get('/v1/status')).body.snapshots_applied).toBe(1);
  });
});
