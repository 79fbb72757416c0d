import { nanoid } from 'nanoid';
import { pino } from 'pino';
import { createServer, loadServerConfig, type FactStore, type BroadcasterHooks, type FactsyncServer } from '@factsync/server';
import { createAgent, loadAgentConfig, type AgentOptions, type PdpAgent } from '@factsync/pdp-agent';

export const ADMIN = 'admin-token';
export const AGENT = 'agent-token';
export const WRITER = 'writer-token';
export const READER = 'reader-token';
export const OTHER_ENV_AGENT = 'other-agent-token';
export const TOKENS = `${ADMIN}=admin:*,${AGENT}=agent:*,${WRITER}=writer:*,${READER}=reader:*,${OTHER_ENV_AGENT}=agent:other`;

export const testLogger = () => pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export interface RunningServer extends FactsyncServer {
  url: string;
}

/** A real server on a free port, in this process. Pass `redisUrl` for the Redis store (a fresh key prefix each time unless given). */
export async function startServer(opts: { redisUrl?: string; keyPrefix?: string; env?: Record<string, string>; store?: FactStore; hooks?: BroadcasterHooks } = {}): Promise<RunningServer> {
  const config = loadServerConfig({
    // Most tests use a fresh env each: created by their first write or hello (env-directory.test.ts tests explicit creation).
    PORT: '0', AUTH_TOKENS: TOKENS, LOG_LEVEL: 'silent', REPLICA_ID: `r-${nanoid(4)}`, ENVS_AUTO_CREATE: 'true',
    ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl, KEY_PREFIX: opts.keyPrefix ?? `t${nanoid(8)}` } : {}),
    ...opts.env,
  });
  const s = await createServer(config, { logger: testLogger(), store: opts.store, hooks: opts.hooks });
  const url = await s.listen();
  return Object.assign(s, { url });
}

export async function startAgent(serverUrls: string | string[], opts: { env?: Record<string, string>; options?: AgentOptions } = {}): Promise<PdpAgent & { url: string }> {
  const config = loadAgentConfig({
    PORT: '0', SERVER_URL: ([] as string[]).concat(serverUrls).join(','), AGENT_TOKEN: AGENT, AGENT_ENV: 'e1', AGENT_ID: `a-${nanoid(6)}`,
    RECONNECT_MIN_MS: '20', RECONNECT_MAX_MS: '500', LOG_LEVEL: 'silent', ...opts.env,
  });
  const a = await createAgent(config, { logger: testLogger(), ...opts.options });
  const url = await a.start();
  return Object.assign(a, { url });
}

export const newEnv = () => `e-${nanoid(8).replace(/[^A-Za-z0-9]/g, 'x')}`;
