import type { ChildProcess } from 'node:child_process';
import { spawnChild } from './children.js';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';

export interface RedisHandle {
  url: string;
  source: 'REDIS_URL' | 'testcontainers' | 'redis-server';
  stop(): Promise<void>;
}

async function answers(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

const dockerAvailable = (): boolean => Boolean(process.env.DOCKER_HOST) || existsSync('/var/run/docker.sock');

/** A redis-server child process on a free port, without persistence unless asked. */
export async function startRedisServer(opts: { port?: number; appendonly?: boolean; dir?: string } = {}): Promise<RedisHandle & { process: ChildProcess; port: number }> {
  const port = opts.port ?? await freePort();
  const args = ['--port', String(port), '--save', '', '--appendonly', opts.appendonly ? 'yes' : 'no', '--bind', '127.0.0.1'];
  if (opts.appendonly) args.push('--appendfsync', 'always');
  if (opts.dir) args.push('--dir', opts.dir);
  const child = spawnChild(process.env.REDIS_SERVER_BIN ?? 'redis-server', args, { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    if (await answers(url)) {
      return {
        url, port, source: 'redis-server', process: child,
        stop: () => new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not answer within 5 s');
}

/**
 * The Redis for the test run (the README's "Tests"): REDIS_URL when set, else a
 * testcontainers Redis when a Docker engine answers, else a redis-server child.
 */
export async function acquireRedis(): Promise<RedisHandle> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) {
    if (!(await answers(fromEnv))) throw new Error(`REDIS_URL=${fromEnv} does not answer PING`);
    return { url: fromEnv, source: 'REDIS_URL', stop: async () => undefined };
  }
  if (dockerAvailable()) {
    try {
      const { GenericContainer } = await import('testcontainers');
      const c = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start();
      return { url: `redis://${c.getHost()}:${c.getMappedPort(6379)}`, source: 'testcontainers', stop: async () => void (await c.stop()) };
    } catch {
      // No usable engine after all: fall through to a local redis-server.
    }
  }
  return startRedisServer();
}
