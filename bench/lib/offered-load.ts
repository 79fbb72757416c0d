import type { Fleet } from './harness.js';
import type { Progress } from './stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Writes at a fixed offered rate (at most 16 in flight), then waits until the
 * fleet applied every version on every agent (or 60 s): P2 at an equal load
 * for the arms it compares. Returns the versions × agents applied and the
 * seconds from the first write until then.
 */
export async function offerWrites(o: {
  fleet: Fleet; agents: number; rate: number; seconds: number; write: (i: number) => Promise<unknown>; prog: Progress;
}): Promise<{ applied: number; total: number; writtenS: number; drainedS: number }> {
  const before = await o.fleet.applied();
  const wall0 = performance.now();
  const total = o.rate * o.seconds;
  let inFlight = 0;
  const sent: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    const due = wall0 + (i * 1000) / o.rate;
    while (performance.now() < due || inFlight >= 16) await sleep(Math.max(1, Math.min(5, due - performance.now())));
    inFlight++;
    sent.push(o.write(i).finally(() => inFlight--));
    if (i % 20 === 0) o.prog.update(`P2 ${i}/${total} writes at ${o.rate}/s`);
  }
  await Promise.all(sent);
  const writtenS = (performance.now() - wall0) / 1000;
  const deadline = Date.now() + 60_000;
  let applied = 0;
  while (Date.now() < deadline && (applied = (await o.fleet.applied()) - before) < total * o.agents) await sleep(50);
  return { applied, total, writtenS, drainedS: (performance.now() - wall0) / 1000 };
}

/** Sockets the servers cut as slow consumers (`factsync_slow_consumers_total`), summed. */
export async function slowConsumers(urls: string[], get: (url: string) => Promise<string> = async (u) => (await fetch(u)).text()): Promise<number> {
  let n = 0;
  for (const u of urls) n += Number(/^factsync_slow_consumers_total (\d+)/m.exec(await get(`${u}/metrics`))?.[1] ?? 0);
  return n;
}
