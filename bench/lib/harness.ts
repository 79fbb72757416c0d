import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { nanoid } from 'nanoid';
import { spawnTs, spawnServer, type Proc } from '../../test/src/procs.js';
import { startRedisServer, acquireRedis, type RedisHandle } from '../../test/src/redis.js';

/** BENCH_CPU_PROF=<dir>: run servers and fleets with --cpu-prof into that directory. */
const PROFILE = process.env.BENCH_CPU_PROF;

/** A simulated fleet connects from one address, thousands of sockets per replica: lift the per-address and total caps. */
const FLEET_FROM_ONE_HOST = { MAX_CONNECTIONS: '1000000', MAX_CONNECTIONS_PER_ADDRESS: '1000000' };

export const ADMIN = 'bench-admin';
export const AGENT = 'bench-agent';
export const TOKENS = `${ADMIN}=admin:*,${AGENT}=agent:*`;

/**
 * BENCH_PIN=1 (on a machine with at least 2 cores): the load generator (this
 * process) runs on core 0 and server replicas on the last core, so the
 * generator's CPU is not counted against the server. Redis and simulated agents
 * are not pinned (a 2-core machine has no third core for them): results say so.
 */
export const PIN = process.env.BENCH_PIN === '1';
const lastCore = () => cpus().length - 1;
export function pinGenerator(): void {
  if (PIN && lastCore() > 0) execFileSync('taskset', ['-pc', '0', String(process.pid)], { stdio: 'ignore' });
}
/** Children inherit the generator's core: those that should float get every core back. */
function float(pid: number | undefined): void {
  if (PIN && pid && lastCore() > 0) execFileSync('taskset', ['-pc', `0-${lastCore()}`, String(pid)], { stdio: 'ignore' });
}
function pinServers(pids: number[]): void {
  if (!PIN || lastCore() === 0) return;
  for (const pid of pids) execFileSync('taskset', ['-pc', String(lastCore()), String(pid)], { stdio: 'ignore' });
}

/** Everything one scenario started, stopped in reverse order. */
export class Harness {
  private readonly stops: (() => Promise<unknown>)[] = [];
  redis!: RedisHandle;
  /** KEY_PREFIX of the servers started last, for writing to their data directly. */
  keyPrefix = '';

  async startRedis(): Promise<RedisHandle> {
    // A Redis of our own when we can start one, so nothing else competes for it.
    this.redis = await startRedisServer().catch(() => acquireRedis());
    float((this.redis as { process?: ChildProcess }).process?.pid);
    this.stops.push(() => this.redis.stop());
    return this.redis;
  }

  async servers(n: number, env: Record<string, string> = {}, nodeArgs: string[] = PROFILE ? [`--cpu-prof`, `--cpu-prof-dir=${PROFILE}`] : []): Promise<Proc[]> {
    const prefix = `b${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`;
    this.keyPrefix = prefix;
    const procs = await Promise.all(Array.from({ length: n }, (_, i) =>
      nodeArgs.length
        ? spawnTs('server/src/main.ts', { PORT: '0', REDIS_URL: this.redis.url, KEY_PREFIX: prefix, AUTH_TOKENS: TOKENS, REPLICA_ID: `b${i + 1}`, LOG_LEVEL: 'info', ...env }, 'factsync server listening', 30_000, nodeArgs)
        : spawnServer({ REDIS_URL: this.redis.url, KEY_PREFIX: prefix, AUTH_TOKENS: TOKENS, REPLICA_ID: `b${i + 1}`, LOG_LEVEL: 'info', ...FLEET_FROM_ONE_HOST, ...env })));
    for (const p of procs) this.stops.push(() => p.stop('SIGTERM'));
    pinServers(procs.map((p) => p.child.pid!));
    return procs;
  }

  async sioNodes(n: number): Promise<Proc[]> {
    const id = nanoid(6);
    const procs = await Promise.all(Array.from({ length: n }, (_, i) =>
      spawnTs('bench/sim/sio-server.ts', { PORT: '0', REDIS_URL: this.redis.url, BENCH_ID: id, NODE_INDEX: String(i) }, 'sio node listening')));
    for (const p of procs) this.stops.push(() => p.stop('SIGTERM'));
    return procs;
  }

  async agentProcess(env: Record<string, string>): Promise<Proc> {
    const p = await spawnTs('pdp-agent/src/main.ts', { PORT: '0', LOG_LEVEL: 'info', ...env }, 'factsync agent listening');
    float(p.child.pid);
    this.stops.push(() => p.stop('SIGTERM'));
    return p;
  }

  /** `count` simulated agents over `processes` child processes; resolves once all are connected (and bootstrapped). */
  async fleet(o: { kind: 'factsync' | 'sio'; urls: string[]; count: number; env?: string; envs?: number; idle?: boolean; processes?: number; ca?: string; scopes?: number; onProgress?: (ready: number) => void }): Promise<Fleet> {
    const n = o.processes ?? Math.max(1, Math.min(4, Math.ceil(o.count / 500)));
    const children: ChildProcess[] = [];
    const per = Math.ceil(o.count / n);
    const script = fileURLToPath(new URL('../sim/fleet.ts', import.meta.url));
    await Promise.all(Array.from({ length: n }, (_, i) => new Promise<void>((resolve, reject) => {
      const count = Math.min(per, o.count - i * per);
      const cfg = { kind: o.kind, urls: o.urls, count, env: o.env ?? 'bench', envs: o.envs, token: AGENT, idPrefix: `sim${i}`, idle: o.idle ?? false, ca: o.ca, scopes: o.scopes, offset: i * per };
      const prof = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE}/fleet`] : [];
      const child = fork(script, [JSON.stringify(cfg)], { execArgv: [...prof, '--import', 'tsx', '--max-old-space-size=4096'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      children.push(child);
      float(child.pid);
      const timer = setTimeout(() => reject(new Error(`fleet ${i} not ready in 120 s`)), 120_000);
      child.on('message', (m: { type: string; message?: string }) => {
        if (m.type === 'ready') {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`fleet ${i} exited ${code}`)));
    })));
    const fleet = new Fleet(children);
    this.stops.push(() => fleet.close());
    return fleet;
  }

  async close(): Promise<void> {
    for (const s of this.stops.reverse()) await s().catch(() => undefined);
    this.stops.length = 0;
  }
}

export class Fleet {
  constructor(readonly children: ChildProcess[]) {}

  /** Versions applied (factsync) or messages applied (sio), summed over the fleet. */
  async applied(): Promise<number> {
    const parts = await Promise.all(this.children.map((c) => new Promise<number>((resolve) => {
      const on = (m: { type: string; applied: number }) => {
        if (m.type !== 'stats') return;
        c.off('message', on);
        resolve(m.applied);
      };
      c.on('message', on);
      c.send({ type: 'stats' });
    })));
    return parts.reduce((a, b) => a + b, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.send({ type: 'close' });
      setTimeout(() => c.kill('SIGKILL'), 3000).unref();
    })));
  }
}
