import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { Cluster, ADMIN, type AgentProc } from '../src/cluster.js';
import { startWriters, type WriteRecord, type WriterStats } from '../src/load-writers.js';
import { checkSyncedNeverEarly, readHistory } from '../src/history-checker.js';
import { TestNetwork, netnsUnavailable } from '../src/netns.js';
import { spawnChild, killGroup } from '../src/children.js';
import { client } from '../src/http.js';
import type { Proc } from '../src/procs.js';
import { SOAK_SCALE, sleep, waitUntil } from '../src/wait.js';

/**
 * Partitions between real hosts: Redis, two server replicas and three agents,
 * each in a network namespace of its own on one bridge, while writers write
 * through both replicas and every third write waits for the agents' acks.
 * Each fault is what a real link does (loss, one direction cut, a slow link, a
 * link down, a flapping link) or a replica that sees Redis but not its agents,
 * or its agents but not Redis. After each, the history checker runs over every
 * write since the start: none lost, none reordered, every agent's state equal
 * to a replay at every version, and `synced` never reported before an agent
 * had applied the write. `npm run soak` runs each fault SOAK_SCALE times longer.
 */
const unavailable = netnsUnavailable();
if (unavailable) console.log(`[partitions] skipped: ${unavailable}`);

const WRITES = 30 * SOAK_SCALE;

describe.skipIf(unavailable !== null)('fault: partitions between real hosts', () => {
  let net: TestNetwork;
  let redis: ChildProcess;
  let cluster: Cluster;
  let s1: Proc;
  let s2: Proc;
  const agents: AgentProc[] = [];
  const all: WriteRecord[] = [];

  beforeAll(async () => {
    net = new TestNetwork(['redis', 's1', 's2', 'a1', 'a2', 'a3']);
    const r = net.host('redis');
    redis = spawnChild(r.exec[0]!, [...r.exec.slice(1), 'redis-server', '--bind', r.ip, '--port', '6379', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    redis.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    await waitUntil(() => log.includes('Ready to accept connections'), `redis-server on ${r.ip} (log: ${log.slice(-300)})`, 20_000);

    // Short ping, silence and store limits so a dead link is noticed within the run.
    cluster = new Cluster(`redis://${r.ip}:6379`, { PING_INTERVAL_MS: '1000', STORE_LOST_MS: '3000', REDIS_COMMAND_TIMEOUT_MS: '1000' });
    [s1, s2] = (await cluster.startServers(2, {}, [net.host('s1'), net.host('s2')])) as [Proc, Proc];
    const placement: [string, Proc[]][] = [['a1', [s1, s2]], ['a2', [s2, s1]], ['a3', [s1, s2]]];
    agents.push(...(await Promise.all(placement.map(([id, servers]) => cluster.startAgent(id, servers.map((s) => s.url), { SERVER_TIMEOUT_MS: '3000', RECONNECT_MAX_MS: '1000' }, false, net.host(id))))));
    await Promise.all(agents.map((a) => cluster.ready(a)));
  }, 120_000);

  afterAll(async () => {
    net?.healAll();
    await cluster?.stop();
    if (redis) killGroup(redis);
    net?.destroy();
  });

  const serverOf = async (a: AgentProc): Promise<string | undefined> => ((await client(a.url).get('/v1/status')).body as { server?: string }).server;

  /**
   * Writers through both replicas: WRITES before the fault, WRITES during it
   * (`during` also waits for what the fault must cause), then heal, WRITES
   * after. Then every agent reaches head and the checkers run over all writes.
   */
  async function phase(name: string, o: { fault: () => void | Promise<void>; during?: () => Promise<void>; heal: () => void | Promise<void> }): Promise<WriterStats> {
    const writers = startWriters({
      urls: [s1.url, s2.url], env: cluster.env, token: ADMIN, writers: 3, prefix: name, requestTimeoutMs: 15_000,
      waitFor: { agents: 'a1,a2,a3', timeoutS: 1, every: 3 },
    });
    try {
      await waitUntil(() => writers.count >= WRITES, `${name}: writes before the fault`, 30_000);
      await o.fault();
      const at = writers.count;
      await waitUntil(() => writers.count >= at + WRITES, `${name}: writes during the fault`, 60_000);
      await o.during?.();
    } finally {
      await o.heal();
    }
    const healed = writers.count;
    await waitUntil(() => writers.count >= healed + WRITES, `${name}: writes after healing`, 60_000);
    const stats = await writers.stop();
    all.push(...stats.records);

    const result = await cluster.check(all, s2.url);
    const histories = new Map(agents.map((a) => [a.id, readHistory(a.historyFile)]));
    const early = checkSyncedNeverEarly(all, histories);
    expect(early.violations, JSON.stringify(early.violations.slice(0, 5))).toEqual([]);
    expect(stats.statuses[500] ?? 0).toBe(0);
    console.log(`[partitions:${name}] ${JSON.stringify({ ...result, ...early, violations: undefined, writes: stats.records.length, statuses: stats.statuses, connectionErrors: stats.connectionErrors, hangs: stats.hangs })}`);
    return stats;
  }

  it('random loss of 20% of packets on an agent and 10% on a replica', async () => {
    await phase('loss', { fault: () => (net.loss('a1', 20), net.loss('s1', 10)), heal: () => (net.heal('a1'), net.heal('s1')) });
  });

  it('one direction cut: a replica that cannot send to its agent, an agent that cannot send to its replica; both agents move', async () => {
    // Where a1 and a2 are now: the loss phase may have moved one (a silence past SERVER_TIMEOUT_MS is a move).
    const byOrigin = new Map([[new URL(s1.url).origin, 's1'], [new URL(s2.url).origin, 's2']] as const);
    const [from1, from2] = await Promise.all([serverOf(agents[0]!), serverOf(agents[1]!)]).then((o) => o.map((x) => byOrigin.get(x as never)));
    if (!from1 || !from2) throw new Error(`a1 or a2 is on no known replica (${from1}, ${from2})`);
    await phase('one-way', {
      fault: () => (net.cutOneWay(from1, 'a1'), net.cutOneWay('a2', from2)),
      // a1 hears nothing and gives up on its replica (SERVER_TIMEOUT_MS); a2's replica hears no pong and terminates it.
      during: async () => {
        await waitUntil(async () => byOrigin.get((await serverOf(agents[0]!)) as never) !== from1, `a1 to leave ${from1}`, 30_000);
        await waitUntil(async () => byOrigin.get((await serverOf(agents[1]!)) as never) !== from2, `a2 to leave ${from2}`, 30_000);
      },
      heal: () => (net.heal(from1), net.heal('a2')),
    });
  });

  it('a slow link (tbf) on an agent and on a replica', async () => {
    await phase('slow', { fault: () => (net.slow('a3', '256kbit'), net.slow('s1', '1mbit')), heal: () => (net.heal('a3'), net.heal('s1')) });
  });

  it('an agent\'s link down both ways for seconds, then up', async () => {
    await phase('link-down', {
      fault: () => net.linkDown('a1'),
      during: async () => void (await sleep(3000)),
      heal: () => net.heal('a1'),
    });
  });

  it('a replica cut from Redis but not from its agents: its writes answer 503 within REDIS_COMMAND_TIMEOUT_MS, its agents move', async () => {
    const stats = await phase('replica-without-redis', {
      fault: () => net.isolate('s1', ['redis']),
      during: async () => {
        for (const a of agents) await waitUntil(async () => (await serverOf(a)) === new URL(s2.url).origin, `${a.id} to leave s1, which lost Redis`, 30_000);
      },
      heal: () => net.heal('s1'),
    });
    expect(stats.statuses[503] ?? 0).toBeGreaterThan(0);
    expect(stats.hangs).toBe(0);
  });

  it('a replica cut from its agents but not from Redis: they move to the other', async () => {
    await phase('replica-without-agents', {
      fault: () => net.isolate('s2', ['a1', 'a2', 'a3']),
      during: async () => {
        for (const a of agents) await waitUntil(async () => (await serverOf(a)) === new URL(s1.url).origin, `${a.id} to move to s1`, 30_000);
      },
      heal: () => net.heal('s2'),
    });
  });

  it('a flapping link: an agent\'s link down and up every few hundred ms', async () => {
    await phase('flapping', {
      fault: async () => {
        for (let i = 0; i < 8 * SOAK_SCALE; i++) {
          net.linkDown('a2');
          await sleep(200 + Math.random() * 500);
          net.linkUp('a2');
          await sleep(200 + Math.random() * 500);
        }
      },
      heal: () => net.heal('a2'),
    });
  });
});
