import type { Op } from '@factsync/shared';

export interface WriteRecord {
  id: string;
  version: number;
  ops: Op[];
  /** For a write sent with X-Wait-For: what the server said of its sync, and when the answer arrived (ms epoch). */
  sync?: { synced: boolean; acked: string[] };
  repliedAt?: number;
}

export interface WriterStats {
  records: WriteRecord[];
  attempts: number;
  /** Answers by status, e.g. {200: 500, 503: 12}. */
  statuses: Record<number, number>;
  /** 503 answers that came without Retry-After. */
  missingRetryAfter: number;
  /** Requests that got no answer within `requestTimeoutMs`. */
  hangs: number;
  connectionErrors: number;
}

/**
 * Concurrent writers for fault scenarios. Each write has its own Idempotency-Key
 * and is retried (on 5xx, connection errors and timeouts, moving to the next
 * URL) until it gets a version, so every write ends with exactly one version.
 * `stop()` stops starting writes and waits for the ones in flight.
 */
export function startWriters(o: {
  urls: string[]; env: string; token: string; writers: number; prefix?: string; requestTimeoutMs?: number; pauseMs?: number;
  /** Every `every`-th write waits for these agents' acks (X-Wait-For) up to `timeoutS` seconds. */
  waitFor?: { agents: string; timeoutS: number; every: number };
}) {
  const stats: WriterStats = { records: [], attempts: 0, statuses: {}, missingRetryAfter: 0, hangs: 0, connectionErrors: 0 };
  let stopping = false;
  let seq = 0;
  const prefix = o.prefix ?? 'w';

  async function writeOne(id: string, ops: Op[], slot: number, wait: boolean): Promise<void> {
    const waitHeaders: Record<string, string> = wait && o.waitFor ? { 'x-wait-for': o.waitFor.agents, 'x-wait-timeout': String(o.waitFor.timeoutS) } : {};
    for (let attempt = 0; ; attempt++) {
      const url = o.urls[(slot + attempt) % o.urls.length]!;
      stats.attempts++;
      try {
        const res = await fetch(`${url}/v1/envs/${o.env}/facts`, {
          method: 'POST',
          headers: { authorization: `Bearer ${o.token}`, 'content-type': 'application/json', 'idempotency-key': id, ...waitHeaders },
          body: JSON.stringify({ ops }),
          signal: AbortSignal.timeout((o.requestTimeoutMs ?? 10_000) + (wait && o.waitFor ? o.waitFor.timeoutS * 1000 : 0)),
        });
        const repliedAt = Date.now();
        stats.statuses[res.status] = (stats.statuses[res.status] ?? 0) + 1;
        const body = (await res.json()) as { version?: number; sync?: { synced: boolean; acked: string[] } };
        if (res.status === 503 && !res.headers.get('retry-after')) stats.missingRetryAfter++;
        if (res.status === 200 && typeof body.version === 'number') {
          stats.records.push({ id, version: body.version, ops, ...(body.sync ? { sync: { synced: body.sync.synced, acked: body.sync.acked }, repliedAt } : {}) });
          return;
        }
        if (res.status < 500) throw new Error(`write ${id} refused: ${res.status} ${JSON.stringify(body)}`);
      } catch (e) {
        if ((e as Error).message.startsWith('write ')) throw e;
        if ((e as Error).name === 'TimeoutError') stats.hangs++;
        else stats.connectionErrors++;
      }
      await new Promise((r) => setTimeout(r, Math.min(500, 20 * 2 ** Math.min(attempt, 5))));
    }
  }

  const loops = Array.from({ length: o.writers }, async (_, slot) => {
    while (!stopping) {
      const n = seq++;
      const id = `${prefix}-${slot}-${n}`;
      const ops: Op[] = [
        { op: 'upsert', type: 'doc', key: `d${n % 40}`, value: { id, n } },
        ...(n % 5 === 0 ? [{ op: 'delete' as const, type: 'doc', key: `d${(n + 7) % 40}` }] : []),
        { op: 'upsert', type: 'user', key: `${prefix}-${slot}`, value: { email: `${id}@x.io`, attributes: { n } } },
      ];
      await writeOne(id, ops, slot, o.waitFor !== undefined && n % o.waitFor.every === 0);
      if (o.pauseMs) await new Promise((r) => setTimeout(r, o.pauseMs));
    }
  });

  return {
    stats,
    get count() {
      return stats.records.length;
    },
    async stop(): Promise<WriterStats> {
      stopping = true;
      await Promise.all(loops);
      return stats;
    },
  };
}
