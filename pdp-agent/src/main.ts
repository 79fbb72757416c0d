import { runUntilSignal } from '@factsync/shared/lifecycle';
import { pino } from 'pino';
import { describeStartupError } from '@factsync/shared';
import { ConfigError, loadAgentConfig } from './config.js';
import { createAgent } from './agent.js';

/** `npm run agent`: configuration from the environment, then run until SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadAgentConfig(process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`factsync agent: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = pino({ level: config.logLevel }).child({ agentId: config.agentId, env: config.env });
  const agent = await createAgent(config, { logger: log });
  const url = await agent.start().catch(async (e: unknown) => {
    await agent.close().catch(() => undefined);
    process.stderr.write(`factsync agent: cannot start: ${describeStartupError(e)}\n`);
    return process.exit(1);
  });
  log.info({ url, servers: config.serverUrls.map((u) => u.origin) }, 'factsync agent listening');

  runUntilSignal(() => agent.close(), config.shutdownTimeoutMs, log);
}

void main();
