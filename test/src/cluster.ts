import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nanoid } from 'nanoid';
import { expect } from 'vitest';
import { ADMIN, AGENT, TOKENS } from './inproc.js';
import { spawnAgent, spawnServer, type Proc } from './procs.js';
import { client } from './http.js';
import { waitUntil } from './wait.js';
import { checkHistories, readHistory, type CheckResult } from './history-checker.js';
import type { WriteRecord } from './load-writers.js';

/** Where a process runs: a test host of test/src/netns.ts (its address and the command that enters it). */
export interface On {
  ip: string;
  exec: string[];
}

export interface AgentProc extends Proc {
  id: string;
  historyFile: string;
  dataDir: string;
}

/** Server and agent processes for fault scenarios; every agent records its apply history. */
export class Cluster {
  readonly servers: Proc[] = [];
  readonly agents: AgentProc[] = [];
  readonly env = `f-${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`;
  readonly prefix = `f${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`;
  private dir = '';

  constructor(private readonly redisUrl: string, private readonly serverEnv: Record<string, string> = {}) {}

  /** With `on`, server i runs on test host on[i], listening on its address. */
  async startServers(n: number, extra: Record<string, string> = {}, on: On[] = []): Promise<Proc[]> {
    const started = await Promise.all(Array.from({ length: n }, (_, i) => spawnServer({
      REDIS_URL: this.redisUrl, KEY_PREFIX: this.prefix, AUTH_TOKENS: TOKENS, REPLICA_ID: `r${this.servers.length + i + 1}`,
      HEAL_INTERVAL_MS: '200', REDIS_COMMAND_TIMEOUT_MS: '1000', LOG_LEVEL: 'info', ...(on[i] ? { HOST: on[i].ip } : {}), ...this.serverEnv, ...extra,
    }, on[i]?.exec)));
    this.servers.push(...started);
    return started;
  }

  /** With `persist`, the agent keeps its state in a DATA_DIR of its own that survives restarts under the same id. */
  async startAgent(id: string, serverUrls: string[], extra: Record<string, string> = {}, persist = false, on?: On): Promise<AgentProc> {
    if (!this.dir) this.dir = await mkdtemp(join(tmpdir(), 'factsync-fault-'));
    const historyFile = join(this.dir, `${id}.history`);
    const dataDir = join(this.dir, `${id}-data`);
    const p = await spawnAgent({
      SERVER_URL: serverUrls.join(','), AGENT_TOKEN: AGENT, AGENT_ENV: this.env, AGENT_ID: id, HISTORY_FILE: historyFile,
      SERVER_TIMEOUT_MS: '3000', LOG_LEVEL: 'info', ...(persist ? { DATA_DIR: dataDir } : {}), ...(on ? { HOST: on.ip, AGENT_API_INSECURE: 'true' } : {}), ...extra,
    }, on?.exec);
    const a = Object.assign(p, { id, historyFile, dataDir });
    this.agents.push(a);
    return a;
  }

  async ready(a: Proc): Promise<void> {
    await waitUntil(async () => (await client(a.url).get('/readyz')).status === 200, `${a.url} ready`, 20_000);
  }

  /** Wait until every live agent applied head, then run the history checker. */
  async check(writes: WriteRecord[], serverUrl: string): Promise<CheckResult> {
    const admin = client(serverUrl, ADMIN);
    const snap = (await admin.get(`/v1/envs/${this.env}/snapshot`)).body as { version: number; facts: [] };
    const live = this.agents.filter((a) => a.child.exitCode === null && a.child.signalCode === null);
    for (const a of live) {
      await waitUntil(async () => (await client(a.url).get('/v1/status')).body.applied === snap.version, `${a.id} to reach ${snap.version}`, 20_000);
    }
    const histories = new Map(this.agents.map((a) => [a.id, readHistory(a.historyFile)]));
    const chain = new Map<number, string>();
    for (let after = 0; after < snap.version;) {
      const page = await admin.get(`/v1/envs/${this.env}/changes?after=${after}&limit=1000`);
      if (page.status !== 200) break; // trimmed: only what the log holds is compared
      for (const c of page.body.changes as { version: number; id: string }[]) chain.set(c.version, c.id);
      after = (page.body.changes as { version: number }[]).at(-1)?.version ?? snap.version;
    }
    const result = checkHistories({ writes, histories, head: snap.version, snapshotFacts: snap.facts, chain });
    expect(result.violations, JSON.stringify(result.violations.slice(0, 5))).toEqual([]);
    expect(result.head).toBe(writes.length);
    return result;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.agents, ...this.servers].map((p) => {
      if (p.child.signalCode === 'SIGSTOP') p.child.kill('SIGCONT');
      return p.stop('SIGTERM');
    }));
  }
}

export { ADMIN };
