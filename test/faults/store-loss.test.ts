import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN, Cluster } from '../src/cluster.js';
import { readHistory, type HistoryEntry } from '../src/history-checker.js';
import { startRedisServer } from '../src/redis.js';
import { client } from '../src/http.js';
import { SOAK_SCALE, waitUntil } from '../src/wait.js';

interface Written { agent: number; version: number; epoch: string; synced: boolean; applied: number; at: number }
interface Read { agent: number; token: string; version: number; epoch: string; answeredAt: number; status: number }

/** Each entry of a history with the epoch it belongs to (a change is of the epoch of the snapshot or restore before it). */
function withEpochs(h: HistoryEntry[]): (HistoryEntry & { epoch: string | null })[] {
  let epoch: string | null = null;
  return h.map((e) => {
    if (e.kind !== 'change') epoch = e.epoch ?? null;
    return { ...e, epoch };
  });
}

/**
 * Redis restarted without its data (no AOF) under load through the agents: a
 * new epoch, versions from 1 again. The history checker's question: did any
 * agent answer `synced: true` for a write, or an `at_least` read, from a state
 * of another epoch? Every such answer must be backed by a line of that agent's
 * history of the same epoch at or past the version, written before the answer.
 */
describe('fault: the store loses its data under load', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it('no synced: true and no at_least read crosses epochs; every agent ends in the new epoch', async () => {
    let redis = await startRedisServer();
    cleanups.push(() => redis.stop());
    const cluster = new Cluster(redis.url);
    cleanups.push(() => cluster.stop());
    const [r1, r2] = await cluster.startServers(2);
    const agents = await Promise.all([0, 1, 2].map((i) => cluster.startAgent(`loss${i}`, i % 2 ? [r2!.url, r1!.url] : [r1!.url, r2!.url], { RECONNECT_MAX_MS: '500' })));
    await Promise.all(agents.map((a) => cluster.ready(a)));

    const written: Written[] = [];
    const reads: Read[] = [];
    let stopping = false;
    let n = 0;
    const worker = async (w: number): Promise<void> => {
      while (!stopping) {
        const i = (n++ + w) % agents.length;
        const key = `k${n}`;
        const r = await client(agents[i]!.url).post('/v1/facts', { ops: [{ op: 'upsert', type: 'doc', key, value: { n } }] }, { 'x-wait-timeout': '2' }).catch(() => undefined);
        if (!r || r.status !== 200) continue; // the store is away: 502/503, retried by the next loop
        written.push({ agent: i, version: r.body.version, epoch: r.body.epoch, synced: r.body.synced, applied: r.body.applied, at: Date.now() });
        const j = (i + 1) % agents.length;
        const token = `${r.body.version}.${r.body.epoch}`;
        const got = await client(agents[j]!.url).get(`/v1/facts/doc/${key}?at_least=${token}`, { 'x-wait-timeout': '2' }).catch(() => undefined);
        if (got && got.status !== 0) {
          reads.push({ agent: j, token, version: r.body.version, epoch: r.body.epoch, answeredAt: Date.now(), status: got.status });
        }
      }
    };
    const workers = [0, 1, 2].map((w) => worker(w));
    await waitUntil(() => written.length >= 60 * SOAK_SCALE, 'writes before the loss', 30_000);
    const port = redis.port;
    redis.process.kill('SIGKILL');
    await redis.stop().catch(() => undefined);
    redis = await startRedisServer({ port });
    const before = written.length;
    const firstEpoch = written[0]!.epoch;
    await waitUntil(() => written.filter((x) => x.epoch !== firstEpoch).length >= 60 * SOAK_SCALE, 'writes in the new epoch', 60_000);
    stopping = true;
    await Promise.all(workers);
    expect(written.length).toBeGreaterThan(before);

    const histories = agents.map((a) => withEpochs(readHistory(a.historyFile)));
    const backed = (agent: number, epoch: string, version: number, by: number) =>
      histories[agent]!.some((e) => e.epoch === epoch && e.v >= version && (e.t ?? 0) <= by);
    const violations: string[] = [];
    for (const w of written) {
      if (w.synced && !backed(w.agent, w.epoch, w.version, w.at)) violations.push(`agent ${w.agent} answered synced for ${w.version}.${w.epoch} without having applied it`);
      if (w.applied > 0 && !backed(w.agent, w.epoch, w.applied, w.at)) violations.push(`agent ${w.agent} answered applied ${w.applied} of epoch ${w.epoch} it did not hold`);
    }
    for (const r of reads) {
      if (r.status === 200 && !backed(r.agent, r.epoch, r.version, r.answeredAt)) violations.push(`agent ${r.agent} answered at_least=${r.token} from another state`);
      if (r.status !== 200 && r.status !== 504 && r.status !== 404) violations.push(`agent ${r.agent}: at_least=${r.token} answered ${r.status}`);
    }
    const epochs = new Set(written.map((w) => w.epoch));
    console.log(`[store-loss] ${JSON.stringify({ writes: written.length, reads: reads.length, epochs: epochs.size, synced: written.filter((w) => w.synced).length, readsOk: reads.filter((r) => r.status === 200).length, violations: violations.length })}`);
    expect(violations).toEqual([]);
    expect(epochs.size).toBe(2);

    // Every agent ends in the new epoch at its head.
    const head = (await client(r1!.url, ADMIN).get(`/v1/envs/${cluster.env}/head`)).body as { version: number; epoch: string };
    expect(head.epoch).not.toBe(firstEpoch);
    for (const a of agents) {
      await waitUntil(async () => {
        const s = (await client(a.url).get('/v1/status')).body as { applied: number; epoch: string };
        return s.epoch === head.epoch && s.applied >= head.version;
      }, `${a.id} in the new epoch at ${head.version}`, 30_000);
    }
  });
});
