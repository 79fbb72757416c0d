import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './ports.js';

/** The machine's PostgreSQL binaries (pg_config --bindir, else the newest /usr/lib/postgresql/N/bin). */
export function postgresBin(): string | undefined {
  const fromConfig = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  if (fromConfig.status === 0 && existsSync(join(fromConfig.stdout.trim(), 'initdb'))) return fromConfig.stdout.trim();
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : undefined;
}

export interface PgCluster {
  url: string;
  port: number;
  /** A client of the `postgres` database (for the test's own statements). */
  client(): Promise<pg.Client>;
  /** Runs `sql` and closes. */
  sql(text: string, params?: unknown[]): Promise<pg.QueryResult>;
  stop(): Promise<void>;
}

/**
 * A PostgreSQL cluster of the test's own, with wal_level=logical, on a free
 * 127.0.0.1 port, in a temporary directory owned by the `postgres` user
 * (initdb refuses to run as root), trust auth; removed by stop().
 */
export async function startPostgres(extra: string[] = []): Promise<PgCluster> {
  const bin = postgresBin();
  if (!bin) throw new Error('no PostgreSQL binaries (pg_config --bindir or /usr/lib/postgresql/*/bin): apt-get install postgresql');
  const dir = mkdtempSync(join(tmpdir(), 'factsync-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()));
  const run = (cmd: string, args: string[]) => (asRoot
    ? execFileSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { stdio: 'pipe' })
    : execFileSync(join(bin, cmd), args, { stdio: 'pipe' }));
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const port = await freePort();
  const options = ['-c', 'wal_level=logical', '-c', `port=${port}`, '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`,
    '-c', 'max_replication_slots=20', '-c', 'max_wal_senders=20', '-c', 'fsync=off', ...extra];
  run('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', '-o', options.map((o) => (o.startsWith('-') ? o : `'${o}'`)).join(' '), 'start']);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const client = async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    return c;
  };
  return {
    url, port, client,
    async sql(text, params) {
      const c = await client();
      try {
        return await c.query(text, params as unknown[]);
      } finally {
        await c.end();
      }
    },
    async stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
