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

  let stoppingAt: number | undefined;
  const stop = (signal: string) => {
    // The same Ctrl-C reaches the whole process group (and npm forwards it): only a later signal forces the exit.
    if (stoppingAt !== undefined) {
      if (Date.now() - stoppingAt < 1000) return;
      process.exit(1);
    }
    stoppingAt = Date.now();
    log.info({ signal }, 'shutting down');
    setTimeout(() => process.exit(1), config.shutdownTimeoutMs).unref();
    agent.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
