import type { ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { usageMonth } from '@factsync/shared';
import type { EventBus, FactLog, SessionRegistry, UsageLedger } from '../store/fact-store.js';
import { agentInfos, type AgentInfo } from '../routes/schemas.js';

export interface EnvStatus {
  env: string;
  head: number;
  epoch: string | null;
  /** The store the server runs on: redis, embedded or memory. */
  store: string;
  agents: (AgentInfo & { lag: number })[];
  /** Distinct users checked this UTC month. */
  mau: number;
  at: string;
}

/**
 * Server-sent events of one env's status for the status page: pushed when the
 * env's events (changes, acks, presence) arrive, at most every `minIntervalMs`,
 * and at least every `maxIntervalMs` so presence that expired without an event shows.
 */
export async function streamEnvStatus(
  store: FactLog & SessionRegistry & EventBus & UsageLedger, env: string, res: ServerResponse, log: FastifyBaseLogger,
  opts: { minIntervalMs: number; maxIntervalMs: number; maxBufferedBytes: number; storeKind: string } = { minIntervalMs: 250, maxIntervalMs: 2000, maxBufferedBytes: 1024 * 1024, storeKind: 'unknown' },
): Promise<void> {
  let pending = false;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let lastSent = 0;

  const send = async () => {
    timer = undefined;
    pending = false;
    lastSent = Date.now();
    try {
      const [head, agents, mau] = await Promise.all([store.head(env), store.agents(env), store.usage(env, usageMonth(Date.now()))]);
      const status: EnvStatus = {
        env, head: head.version, epoch: head.epoch, store: opts.storeKind, mau, at: new Date().toISOString(),
        agents: agentInfos(agents).map((a) => ({ ...a, lag: Math.max(0, head.version - a.applied) })),
      };
      // Backpressure: a client that does not read is cut once the budget is queued (invariant 10).
      if (!closed && res.writableLength > opts.maxBufferedBytes) {
        log.warn({ env, buffered: res.writableLength }, 'status stream client does not read; closing it');
        closed = true;
        res.destroy();
        return;
      }
      if (!closed) res.write(`event: status\ndata: ${JSON.stringify(status)}\n\n`);
    } catch (e) {
      if (!closed) res.write(`event: problem\ndata: ${JSON.stringify({ message: (e as Error).message })}\n\n`);
    }
    schedule(opts.maxIntervalMs);
  };
  const schedule = (delay: number) => {
    if (closed || timer) return;
    timer = setTimeout(() => void send(), delay);
  };
  const poke = () => {
    if (pending) return;
    pending = true;
    if (timer) clearTimeout(timer);
    timer = undefined;
    schedule(Math.max(0, opts.minIntervalMs - (Date.now() - lastSent)));
  };

  const unsubscribe = await store.subscribe(env, poke);
  res.on('close', () => {
    closed = true;
    if (timer) clearTimeout(timer);
    unsubscribe().catch((e: Error) => log.debug({ env, err: e.message }, 'status stream unsubscribe failed'));
  });
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  await send();
}
