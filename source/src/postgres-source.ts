import pg from 'pg';
import type { Logger } from 'pino';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { FactsyncClientError, type FactsyncServerClient } from '@factsync/sdk';
import type { Op } from '@factsync/shared';
import type { PostgresSourceConfig } from './config.js';
import { compileTable, factOf, keyOf, type CompiledTable } from './mapping.js';
import { checkCatalog } from './postgres-catalog.js';
import { SNAPSHOT_DONE, formatPosition, hexLsn, lsnHex, parsePosition, resumable } from './pg-position.js';
import { plan, readOwned } from './owned.js';
import { SinkRefused, SourceSink } from './sink.js';
import { UNCHANGED, keepUnchanged, type Row } from './template.js';

/** Rows per FETCH of a snapshot's cursor. */
const SNAPSHOT_BATCH = 10_000;

/** Why a source cannot go on by itself: its slot is gone or unusable. Exit status 3. */
export class SlotFault extends Error {}
/** A mapping that does not fit the database: one line per mistake. Exit status 2. */
export class MappingError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

export interface PostgresSourceDeps {
  server: FactsyncServerClient;
  log: Logger;
  signal: AbortSignal;
  /** The config file, named in the line of a slot fault. */
  file: string;
}

interface Tx {
  lsn: string;
  ops: Op[];
  /** Mapped tables truncated in this transaction (their owned facts are deleted). */
  truncated: CompiledTable[];
}

/**
 * A Postgres source over logical replication (pgoutput, a publication, a
 * permanent slot). First run: the slot is created with an exported snapshot,
 * the mapped tables are read under it and the owned facts made equal to them;
 * then every committed transaction is streamed from the slot's consistent
 * point, one transaction one version, each write carrying its position. The
 * slot's confirmed position moves only to a transaction the server recorded.
 */
export class PostgresSource {
  private readonly tables: CompiledTable[];
  private readonly byRelation = new Map<string, CompiledTable[]>();
  private readonly sink: SourceSink;
  private db: pg.Client | undefined;
  private service: LogicalReplicationService | undefined;
  /** The commit end LSN of the last transaction the server recorded: the only position confirmed to Postgres. */
  private confirmed: string | undefined;
  private gen = 1;
  /** The cluster's system identifier (IDENTIFY_SYSTEM): part of every position. */
  private system = '';

  constructor(private readonly c: PostgresSourceConfig, private readonly d: PostgresSourceDeps) {
    this.tables = c.tables.map((t, i) => compileTable(t, `tables[${i}]`));
    for (const t of this.tables) this.byRelation.set(`${t.schema}.${t.table}`, [...(this.byRelation.get(`${t.schema}.${t.table}`) ?? []), t]);
    this.sink = new SourceSink(d.server, c.name, d.log, d.signal);
  }

  /** The application_name of a snapshot's connections: a later process ends those of one that was killed. */
  private get snapshotName(): string {
    return `factsync source ${this.c.name} snapshot`.slice(0, 63);
  }

  private get log() {
    return this.d.log;
  }

  /** Checks the mapping and takes the slot's lock (a second process waits here as a standby). */
  async open(): Promise<void> {
    this.db = new pg.Client({ connectionString: this.c.url, application_name: `factsync source ${this.c.name}` });
    await this.db.connect();
    const repl = new pg.Client({ connectionString: this.c.url, replication: 'database' } as pg.ClientConfig);
    await repl.connect();
    try {
      this.system = String((await repl.query('IDENTIFY_SYSTEM')).rows[0].systemid);
    } finally {
      await repl.end().catch(() => undefined);
    }
    const problems = await checkCatalog(this.db, this.c.publication, this.c.create_publication === true, this.tables);
    if (problems.length > 0) throw new MappingError(problems.map((p) => `source ${this.c.name}: ${p}`));
    const lock = await this.db.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [`factsync:${this.c.slot}`]);
    if (!lock.rows[0]!.ok) {
      this.log.info({ source: this.c.name, slot: this.c.slot }, 'another process runs this source; standing by until it stops');
      // Held until this connection ends: the first process's end (or crash) lets exactly one waiter in.
      const waiting = this.db.query('SELECT pg_advisory_lock(hashtext($1))', [`factsync:${this.c.slot}`]);
      const aborted = new Promise<'aborted'>((r) => this.d.signal.addEventListener('abort', () => r('aborted'), { once: true }));
      if ((await Promise.race([waiting, aborted])) === 'aborted') return;
      this.log.info({ source: this.c.name }, 'the other process stopped; taking over');
    }
  }

  /** Runs until the signal aborts; throws SlotFault when the slot cannot be used. */
  async run(): Promise<void> {
    try {
      await this.open();
      if (this.d.signal.aborted) return;
      const from = await this.startingPoint();
      await this.stream(from);
    } finally {
      await this.close();
    }
  }

  /** A new snapshot with a new slot, whatever was recorded: `source resync`. */
  async resync(): Promise<void> {
    try {
      await this.open();
      const recorded = await this.sink.recorded();
      this.gen = (recorded && parsePosition(recorded.position)?.gen) ?? 0;
      await this.dropSlot();
      await this.snapshot();
    } finally {
      await this.close();
    }
  }

  /**
   * Drops this source's slot. It may still be held a moment by the walsender of
   * a process that was killed: this process holds the source's lock, so no
   * live source uses it, and that walsender is ended.
   */
  private async dropSlot(): Promise<void> {
    // A killed process's snapshot transaction would hold the next CREATE_REPLICATION_SLOT until Postgres notices it is gone.
    await this.db!.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [this.snapshotName]);
    for (let attempt = 0; ; attempt++) {
      await this.db!.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [this.c.slot]);
      try {
        await this.db!.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [this.c.slot]);
        return;
      } catch (e) {
        if (!/is active/i.test((e as Error).message) || attempt >= 50) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Where streaming starts: from the recorded position, after a first snapshot when there is none. */
  private async startingPoint(): Promise<string> {
    const recorded = await this.sink.recorded();
    const pos = recorded ? parsePosition(recorded.position) : undefined;
    this.log.debug({ source: this.c.name, recorded: recorded?.position ?? null, system: this.system }, 'starting');
    if (recorded && !pos) throw new SlotFault(`source ${this.c.name}: the recorded position "${recorded.position}" is not a Postgres source's; was the name used by another source?`);
    const slot = (await this.db!.query<{ confirmed_flush_lsn: string | null; wal_status: string | null }>(
      'SELECT confirmed_flush_lsn, wal_status FROM pg_replication_slots WHERE slot_name = $1', [this.c.slot])).rows[0];
    const resync = `npx factsync source resync ${this.d.file} ${this.c.name}`;
    if (pos && pos.system !== this.system) {
      throw new SlotFault(`source ${this.c.name}: the database is another one (system id ${this.system}; the recorded position ${recorded!.position} is of ${pos.system}); its changes cannot continue that history: run ${resync}`);
    }
    if (pos && resumable(pos)) {
      if (!slot) throw new SlotFault(`source ${this.c.name}: replication slot "${this.c.slot}" is gone (recorded position ${recorded!.position}); changes since then cannot be streamed: run ${resync}`);
      if (slot.wal_status === 'lost') throw new SlotFault(`source ${this.c.name}: replication slot "${this.c.slot}" was invalidated (its WAL was removed, max_slot_wal_keep_size); recorded position ${recorded!.position}: run ${resync}`);
      this.gen = pos.gen;
      this.log.info({ source: this.c.name, slot: this.c.slot, position: recorded!.position }, 'streaming from the recorded position');
      return hexLsn(pos.lsn);
    }
    // No snapshot finished: a first run, or one that was interrupted (its slot is ours, never confirmed past its start).
    this.gen = pos?.gen ?? 0;
    if (slot) {
      this.log.warn({ source: this.c.name, slot: this.c.slot }, 'the first snapshot did not finish; dropping its slot and taking it again');
      await this.dropSlot();
    }
    return this.snapshot();
  }

  /**
   * CREATE_REPLICATION_SLOT … (SNAPSHOT 'export') on a replication connection;
   * the tables read in a REPEATABLE READ READ ONLY transaction under that
   * snapshot (the export lives while its connection runs nothing else); the
   * owned facts made equal to them, each write at a snapshot position; then the
   * snapshot recorded as complete. Returns the consistent point.
   */
  private async snapshot(): Promise<string> {
    this.gen += 1;
    const repl = new pg.Client({ connectionString: this.c.url, replication: 'database', application_name: this.snapshotName } as pg.ClientConfig);
    await repl.connect();
    const reader = new pg.Client({ connectionString: this.c.url, application_name: this.snapshotName });
    await reader.connect();
    try {
      const created = (await repl.query(`CREATE_REPLICATION_SLOT "${this.c.slot}" LOGICAL pgoutput (SNAPSHOT 'export')`)).rows[0] as { consistent_point: string; snapshot_name: string };
      const lsn = lsnHex(created.consistent_point);
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await reader.query(`SET TRANSACTION SNAPSHOT '${created.snapshot_name}'`);
      const owned = await this.sink.retrying('read the owned facts', () => readOwned(this.d.server, this.tables.map((t) => ({ type: t.type, keys: t.owns }))));
      let facts = 0;
      const log = this.log;
      const name = this.c.name;
      const tables = this.tables;
      // Each table through a cursor, a batch at a time: the tables are never held, only what differs.
      async function* rows(): AsyncGenerator<{ type: string; key: string; value: Record<string, unknown> }> {
        for (const [i, t] of tables.entries()) {
          await reader.query(`DECLARE snap${i} NO SCROLL CURSOR FOR SELECT * FROM ${t.sql}`);
          let n = 0;
          for (;;) {
            const batch = (await reader.query<Row>(`FETCH ${SNAPSHOT_BATCH} FROM snap${i}`)).rows;
            if (batch.length === 0) break;
            n += batch.length;
            for (const row of batch) {
              const f = factOf(t, row);
              if (f) {
                facts++;
                yield f;
              }
            }
            if (n % (SNAPSHOT_BATCH * 10) === 0) log.info({ source: name, table: `${t.schema}.${t.table}`, rows: n }, 'snapshot: reading');
          }
          await reader.query(`CLOSE snap${i}`);
          log.info({ source: name, table: `${t.schema}.${t.table}`, rows: n }, 'snapshot: table read');
        }
      }
      const ops = await plan(owned, rows());
      await reader.query('COMMIT');
      const at = (part: number) => formatPosition({ gen: this.gen, system: this.system, lsn, snapshot: true, part });
      if (ops.length > 0) await this.sink.write(ops, at);
      await this.sink.write([], () => at(SNAPSHOT_DONE));
      this.log.info({ source: this.c.name, slot: this.c.slot, facts, changed: ops.length, at: created.consistent_point }, 'snapshot applied; streaming from its consistent point');
      return created.consistent_point;
    } finally {
      await reader.end().catch(() => undefined);
      await repl.end().catch(() => undefined);
    }
  }

  /** Streams from `lsn` until aborted; reconnects after a dropped connection; a lost slot is a SlotFault. */
  private async stream(lsn: string): Promise<void> {
    let tx: Tx | undefined;
    let lastActivity = Date.now();
    const service = new LogicalReplicationService({ connectionString: this.c.url }, {
      // Nothing is confirmed by the library: its timer would confirm the last *received* LSN.
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: true },
    });
    this.service = service;
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.c.publication], messages: true });
    const heartbeatPrefix = `factsync:${this.c.slot}`;
    const failed: { error?: Error } = {};
    service.on('data', async (_lsn: string, m: Pgoutput.Message) => {
      try {
        await onMessage(m);
      } catch (e) {
        // Nothing after a failed message may be written or confirmed: drop the stream and resume from what was recorded.
        failed.error = e as Error;
        await service.stop();
      }
    });
    const onMessage = async (m: Pgoutput.Message): Promise<void> => {
      if (failed.error) return;
      lastActivity = Date.now();
      switch (m.tag) {
        case 'begin':
          tx = { lsn: lsnHex(m.commitLsn!), ops: [], truncated: [] };
          return;
        case 'insert':
        case 'update':
        case 'delete':
          if (tx) await this.rowChange(tx, m);
          return;
        case 'truncate':
          if (!tx) return;
          for (const r of m.relations) {
            for (const t of this.byRelation.get(`${r.schema}.${r.name}`) ?? []) {
              tx.truncated.push(t);
              // What this transaction wrote of the table before the TRUNCATE goes with it.
              tx.ops = tx.ops.filter((op) => op.type !== t.type || !t.owns.test(op.key));
            }
          }
          return;
        case 'message':
          // Our heartbeat, outside any transaction: the position moves, no version.
          if (!m.transactional && m.prefix === heartbeatPrefix && m.messageLsn) {
            await this.sink.write([], () => formatPosition({ gen: this.gen, system: this.system, lsn: lsnHex(m.messageLsn!), snapshot: false, part: 0 }));
            await this.confirm(m.messageLsn);
          }
          return;
        case 'commit': {
          const done = tx;
          tx = undefined;
          if (!done) return;
          const ops = await this.withTruncates(done);
          await this.sink.write(ops, (part) => formatPosition({ gen: this.gen, system: this.system, lsn: done.lsn, snapshot: false, part }));
          await this.confirm(m.commitEndLsn!);
          return;
        }
        default:
          return;
      }
    };
    // Postgres asks for a status now and then; it is told the recorded position, never the received one.
    service.on('heartbeat', async (_lsn: string, _ts: number, shouldRespond: boolean) => {
      if (shouldRespond && this.confirmed) await service.acknowledge(this.confirmed);
    });
    service.on('error', (e: Error) => {
      failed.error ??= e;
    });
    const onAbort = () => void service.stop();
    this.d.signal.addEventListener('abort', onAbort, { once: true });
    const beat = setInterval(() => {
      if (Date.now() - lastActivity < this.c.heartbeatMs || !this.db) return;
      lastActivity = Date.now();
      this.db.query('SELECT pg_logical_emit_message(false, $1, $2)', [heartbeatPrefix, '']).catch((e: Error) => this.log.warn({ err: e.message }, 'heartbeat failed'));
    }, Math.max(100, Math.floor(this.c.heartbeatMs / 2)));
    try {
      for (let attempt = 0; !this.d.signal.aborted; attempt++) {
        delete failed.error;
        const start = this.confirmed ?? lsn;
        await service.subscribe(plugin, this.c.slot, start).catch((e: Error) => {
          failed.error = e;
        });
        if (this.d.signal.aborted) break;
        const error = failed.error as Error | undefined;
        if (error instanceof SinkRefused) throw error;
        const message = error?.message ?? 'the replication connection ended';
        if (/can no longer get changes|has been invalidated|does not exist/i.test(message)) {
          throw new SlotFault(`source ${this.c.name}: replication slot "${this.c.slot}" cannot be used (${message}); run npx factsync source resync ${this.d.file} ${this.c.name}`);
        }
        this.log.warn({ source: this.c.name, err: message }, 'replication stream lost; resuming from the recorded position');
        tx = undefined;
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** Math.min(attempt, 5))));
      }
    } finally {
      clearInterval(beat);
      this.d.signal.removeEventListener('abort', onAbort);
    }
  }

  private async confirm(lsn: string): Promise<void> {
    this.confirmed = lsn;
    await this.service?.acknowledge(lsn);
  }

  private async rowChange(tx: Tx, m: Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete): Promise<void> {
    for (const t of this.byRelation.get(`${m.relation.schema}.${m.relation.name}`) ?? []) {
      if (m.tag === 'delete') {
        const key = keyOf(t, m.old ?? m.key);
        if (key !== undefined) tx.ops.push({ op: 'delete', type: t.type, key });
        continue;
      }
      const row = markUnchanged(m.new);
      const f = factOf(t, row);
      if (m.tag === 'update') {
        // A key that changed: the old fact goes in the same version.
        const old = keyOf(t, m.old ?? m.key);
        if (old !== undefined && old !== f?.key) tx.ops.push({ op: 'delete', type: t.type, key: old });
      }
      if (!f) continue;
      const value = f.partial ? await this.withStored(f.type, f.key, f.value) : f.value;
      tx.ops.push({ op: 'upsert', type: f.type, key: f.key, value });
    }
  }

  /** An unchanged TOASTed column keeps what the stored fact has where the column was used. */
  private async withStored(type: string, key: string, value: Record<string, unknown>): Promise<Record<string, unknown>> {
    // A fact that is not there (404) keeps nothing; the server being away is waited out.
    const stored = await this.sink.retrying('read a stored fact', () => this.d.server.fact(type, key).then((r) => r.value, (e: unknown) => {
      if (e instanceof FactsyncClientError && e.code === 'not_found') return {};
      throw e;
    }));
    return keepUnchanged(value, stored) as Record<string, unknown>;
  }

  /** TRUNCATE deletes the table's owned facts, in the transaction's version, before its later rows. */
  private async withTruncates(tx: Tx): Promise<Op[]> {
    if (tx.truncated.length === 0) return tx.ops;
    const owned = await this.sink.retrying('read the owned facts', () => readOwned(this.d.server, tx.truncated.map((t) => ({ type: t.type, keys: t.owns }))));
    const deletes: Op[] = [];
    for (const [type, facts] of owned) for (const key of [...facts.keys()].sort()) deletes.push({ op: 'delete', type, key });
    return [...deletes, ...tx.ops];
  }

  async close(): Promise<void> {
    await this.service?.destroy().catch(() => undefined);
    this.service = undefined;
    await this.db?.end().catch(() => undefined);
    this.db = undefined;
  }
}

/** pgoutput sends an unchanged TOASTed column as no value: mark it so templates keep the stored one. */
function markUnchanged(row: Record<string, unknown>): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(row)) out[k] = v === undefined ? UNCHANGED : v;
  return out;
}

