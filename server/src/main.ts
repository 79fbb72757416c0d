import { loadServerConfig } from './config.js';
import { ConfigError } from '@factsync/shared';
import { createServer } from './app.js';
import { runUntilSignal } from './lifecycle.js';

/** `npm run server`: configuration from the environment, then serve until SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadServerConfig(process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`factsync server: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const server = await createServer(config).catch((e: Error) => {
    process.stderr.write(`factsync server: cannot start: ${e.message}\n`);
    process.exit(1);
  });
  const url = await server.listen();
  server.app.log.info({ url, store: server.store.kind, replica: config.replicaId, tokens: config.tokens.length }, 'factsync server listening');
  if (config.tokens.length === 0) server.app.log.warn('AUTH_TOKENS is empty: every authenticated route will answer 401');
  runUntilSignal(() => server.close(), config.shutdownTimeoutMs, server.app.log);
}

void main();
