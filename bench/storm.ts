import WebSocket from 'ws';
import { ADMIN, AGENT, Harness } from './lib/harness.js';
import { Progress, peakKiB, resetPeak, rssKiB } from './lib/stats.js';
import { post } from './scenarios.js';

const QUICK = process.env.BENCH_QUICK === '1';

/**
 * Snapshot storm (issue "Bounded by design"): 20 sockets ask at once for a
 * snapshot of a 300,000-fact env while another env is written to. Reports the
 * server's RSS growth, how long the 20 snapshots took, and the latency of the
 * writes to the other env meanwhile.
 */
export async function storm(): Promise<Record<string, unknown>> {
  const facts = QUICK ? 50_000 : 300_000;
  const readers = 20;
  const h = new Harness();
  try {
    await h.startRedis();
    const [server] = await h.servers(1);
    const pid = server!.child.pid!;
    const prog = new Progress('storm');
    for (let i = 0; i < facts; i += 5000) {
      const r = await post(`${server!.url}/v1/envs/storm/facts`, { ops: Array.from({ length: 5000 }, (_, j) => ({ op: 'upsert', type: 'doc', key: `k${i + j}`, value: { n: i + j, pad: 'p'.repeat(60) } })) }, { authorization: `Bearer ${ADMIN}` });
      if (r.status !== 200) throw new Error(JSON.stringify(r.body));
      prog.update(`writing ${i + 5000}/${facts} facts`);
    }
    const base = rssKiB(pid);
    // The kernel keeps the peak (VmHWM): no sampling, which would block this process's event loop.
    resetPeak(pid);
    let stop = false;
    const lat: number[] = [];
    const writer = (async () => {
      while (!stop) {
        const t = performance.now();
        await post(`${server!.url}/v1/envs/other/facts`, { ops: [{ op: 'upsert', type: 'doc', key: 'x', value: {} }] }, { authorization: `Bearer ${ADMIN}` });
        lat.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const t0 = Date.now();
    let done = 0;
    await Promise.all(Array.from({ length: readers }, (_, i) => new Promise<void>((resolve) => {
      const ws = new WebSocket(`${server!.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${AGENT}` } });
      ws.on('message', (d: Buffer) => {
        // Only the ends of a frame are decoded: the readers must not load this process (it also times the writer).
        const head = d.subarray(0, 20).toString();
        const tail = d.subarray(Math.max(0, d.length - 40)).toString();
        if (head.startsWith('{"type":"snapshot"') && tail.includes('"last":true')) {
          ws.close();
          prog.update(`${++done}/${readers} snapshots`);
          resolve();
        }
      });
      ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', env: 'storm', agent_id: `r${i}`, applied: 0, ack: false })));
    })));
    const seconds = (Date.now() - t0) / 1000;
    stop = true;
    await writer;
    const peak = peakKiB(pid);
    lat.sort((a, b) => a - b);
    const result = {
      params: { facts, readers },
      server_rss_mib: { before: Math.round(base / 1024), peak: Math.round(peak / 1024), extra: Math.round((peak - base) / 1024) },
      seconds,
      other_env_writes_ms: { count: lat.length, p50: Math.round(lat[lat.length >> 1] ?? 0), max: Math.round(lat.at(-1) ?? 0) },
    };
    prog.done(JSON.stringify(result));
    return result;
  } finally {
    await h.close();
  }
}
