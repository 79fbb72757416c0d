import { pino } from 'pino';
import { onStopSignal } from '@factsync/shared/lifecycle';
import { ConfigFileError, MappingError, SinkRefused, SlotFault, loadConfig, resyncSource, runSources, type RunOptions } from '@factsync/source';
import { ExitError, UsageError, printJson, writeOut, type CliContext } from '../context.js';

/** Exit status of a source whose slot is gone or unusable (docs/sources.md): a resync is needed. */
const SLOT_FAULT = 3;

/** Logs as JSON lines on stderr; SIGTERM/SIGINT stop after the write in flight is answered. */
function options(c: CliContext, file: string): RunOptions & { stop: AbortController } {
  const stop = new AbortController();
  onStopSignal(() => stop.abort(), () => process.exit(1));
  const log = pino({ level: process.env.LOG_LEVEL ?? 'info', base: undefined }, pino.destination(2));
  return { file, server: c.server, log, signal: stop.signal, stop };
}

async function guarded(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof SlotFault) throw new ExitError(SLOT_FAULT, e.message);
    if (e instanceof ConfigFileError || e instanceof MappingError) throw new UsageError(e.message);
    if (e instanceof SinkRefused) throw new ExitError(1, e.message);
    throw e;
  }
}

/** `source run FILE`: keeps the env's owned facts equal to each source of the file, until stopped. */
export async function sourceRun(c: CliContext, file: string): Promise<void> {
  const o = options(c, file);
  await guarded(() => runSources(o));
}

/** `source resync FILE NAME`: a fresh snapshot (a new slot) for one source, then exit 0. */
export async function sourceResync(c: CliContext, file: string, name: string): Promise<void> {
  const o = options(c, file);
  await guarded(() => resyncSource({ ...o, name }));
  process.stderr.write(`factsync: source ${name} resynced; \`source run ${file}\` continues from it\n`);
}

/**
 * `source status [FILE]`: each source's recorded position, the version recorded
 * with it, and how long ago; with the config FILE, each Postgres source's slot
 * too (its confirmed position, the WAL it retains, whether it is active).
 */
export async function sourceStatus(c: CliContext, file?: string): Promise<void> {
  const [sources, head] = await Promise.all([c.server.sources(), c.server.head()]);
  const slots = file ? await slotStates(file) : new Map<string, SlotState>();
  const now = Date.now();
  const rows = sources.map((s) => ({
    ...s, lag_seconds: Math.max(0, Math.round((now - Date.parse(s.updated_at)) / 100) / 10), behind_head: head.version - s.version,
    ...(slots.has(s.name) ? { slot: slots.get(s.name) } : {}),
  }));
  if (c.json) return printJson(c, rows);
  if (rows.length === 0) return writeOut(c.out, `no source has written to env "${c.server.env}"\n`);
  const w = Math.max(6, ...rows.map((r) => r.name.length));
  const slotText = (r: (typeof rows)[number]) => (r.slot ? `  slot ${r.slot.name}: ${r.slot.exists ? `confirmed ${r.slot.confirmed}, retains ${r.slot.retained_bytes} bytes of WAL, ${r.slot.active ? 'active' : 'idle'}${r.slot.wal_status === 'lost' ? ', INVALIDATED' : ''}` : 'GONE'}` : '');
  await writeOut(c.out, `${'source'.padEnd(w)}  ${'position'.padEnd(48)}  ${'version'.padStart(8)}  last recorded\n${rows.map((r) => `${r.name.padEnd(w)}  ${r.position.padEnd(48)}  ${String(r.version).padStart(8)}  ${r.lag_seconds} s ago${slotText(r)}`).join('\n')}\n`);
}

interface SlotState { name: string; exists: boolean; confirmed: string | null; retained_bytes: number | null; active: boolean; wal_status: string | null }

/** The slots of the Postgres sources of a config file, as each database reports them. */
async function slotStates(file: string): Promise<Map<string, SlotState>> {
  let config;
  try {
    config = loadConfig(file);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { default: pg } = await import('pg');
  const out = new Map<string, SlotState>();
  for (const s of config) {
    if (s.kind !== 'postgres') continue;
    const db = new pg.Client({ connectionString: s.postgres.url });
    await db.connect();
    try {
      const r = (await db.query<{ confirmed: string | null; retained: string | null; active: boolean; wal_status: string | null }>(
        `SELECT confirmed_flush_lsn::text AS confirmed, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained, active, wal_status
         FROM pg_replication_slots WHERE slot_name = $1`, [s.postgres.slot])).rows[0];
      out.set(s.postgres.name, { name: s.postgres.slot, exists: r !== undefined, confirmed: r?.confirmed ?? null, retained_bytes: r?.retained ? Number(r.retained) : null, active: r?.active ?? false, wal_status: r?.wal_status ?? null });
    } finally {
      await db.end();
    }
  }
  return out;
}
