import { loadServerConfig } from './config.js';
import { ConfigError, describeStartupError } from '@factsync/shared';
import { createServer } from './app.js';
import { runUntilSignal } from '@factsync/shared/lifecycle';

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
  const fail = (e: unknown): never => {
    if (e instanceof ConfigError) {
      process.stderr.write(`factsync server: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`factsync server: cannot start: ${describeStartupError(e)}\n`);
    process.exit(1);
  };
  const server = await createServer(config).catch(fail);
  const url = await server.listen().catch(async (e: unknown) => {
    await server.close().catch(() => undefined);
    return fail(e);
  });
  server.app.log.info({ url, store: server.store.kind, replica: config.replicaId, tokens: config.tokens.length }, 'factsync server listening');
  if (config.tokens.length === 0 && !config.authTokensFile && !config.jwt) server.app.log.warn('AUTH_TOKENS is empty (and no AUTH_TOKENS_FILE or JWT_* is set): every authenticated route will answer 401');
  runUntilSignal(() => server.close(), config.shutdownTimeoutMs, server.app.log);
}

void main();
