import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { nanoid } from 'nanoid';
import { acquireRedis } from './redis.js';
import { RUN_MARKER, leftovers } from './children.js';
import { sleep } from './wait.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/**
 * One Redis for the whole run; every test isolates itself with its own key
 * prefix. Every process the tests start carries this run's marker, so the
 * teardown can prove that none outlived the run (and kill any that did).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const marker = nanoid(10);
  process.env[RUN_MARKER] = marker;
  const redis = await acquireRedis();
  process.stdout.write(`[factsync tests] Redis from ${redis.source}: ${redis.url}\n`);
  project.provide('redisUrl', redis.url);
  return async () => {
    await redis.stop();
    // Workers kill their children on exit; give the kernel a moment to reap them.
    let left = leftovers(marker);
    for (let i = 0; i < 20 && left.length > 0; i++) {
      await sleep(100);
      left = leftovers(marker);
    }
    if (left.length > 0) {
      for (const p of left) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      throw new Error(`${left.length} process(es) outlived the test run (killed now):\n${left.map((p) => `  ${p.pid} ${p.cmd.slice(0, 160)}`).join('\n')}`);
    }
  };
}
