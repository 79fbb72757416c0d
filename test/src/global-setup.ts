import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { acquireRedis } from './redis.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/** One Redis for the whole run; every test isolates itself with its own key prefix. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await acquireRedis();
  process.stdout.write(`[factsync tests] Redis from ${redis.source}: ${redis.url}\n`);
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}
