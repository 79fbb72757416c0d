import type { Logger } from 'pino';
import type { FactsyncServerClient } from '@factsync/sdk';
import { loadConfig, sourceName, type SourceConfig } from './config.js';
import { PostgresSource } from './postgres-source.js';
import { HttpSource } from './http-source.js';

export interface RunOptions {
  file: string;
  server: FactsyncServerClient;
  log: Logger;
  signal: AbortSignal;
}

function build(s: SourceConfig, o: RunOptions): PostgresSource | HttpSource {
  return s.kind === 'postgres'
    ? new PostgresSource(s.postgres, { server: o.server, log: o.log.child({ source: s.postgres.name }), signal: o.signal, file: o.file })
    : new HttpSource(s.http, { server: o.server, log: o.log.child({ source: s.http.name }), signal: o.signal });
}

/**
 * `source run FILE`: every source of the file, until the signal aborts (SIGTERM:
 * the write in flight is answered first). The first source that cannot go on
 * stops them all with its error (SlotFault: exit 3; MappingError: exit 2).
 */
export async function runSources(o: RunOptions): Promise<void> {
  const stopAll = new AbortController();
  o.signal.addEventListener('abort', () => stopAll.abort(), { once: true });
  const sources = loadConfig(o.file).map((s) => build(s, { ...o, signal: stopAll.signal }));
  const runs = sources.map((s) => s.run().catch((e: unknown) => {
    stopAll.abort();
    throw e;
  }));
  const results = await Promise.allSettled(runs);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** `source resync FILE NAME`: the named source's owned facts made equal to a fresh snapshot (a new slot), then exit. */
export async function resyncSource(o: RunOptions & { name: string }): Promise<void> {
  const config = loadConfig(o.file);
  const s = config.find((c) => sourceName(c) === o.name);
  if (!s) throw new Error(`${o.file} has no source "${o.name}" (sources: ${config.map(sourceName).join(', ')})`);
  await build(s, o).resync();
}
