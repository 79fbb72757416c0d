/**
 * `npm start`: a whole local deployment in one process: one server (embedded
 * store, or Redis when REDIS_URL is set) and one agent, with a fresh dev token.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createServer, loadServerConfig, runUntilSignal } from '@factsync/server';
import { describeStartupError } from '@factsync/shared';
import { createAgent, loadAgentConfig } from '@factsync/pdp-agent';
import { ConfigError } from '@factsync/shared';

/** The data of `npm start`: DATA_DIR, else `.data/` in the project (git-ignored), so a restart keeps every fact and the dev token. */
const DATA_ROOT = resolve(process.env.DATA_DIR ?? join(dirname(fileURLToPath(import.meta.url)), '..', '.data'));

function devToken(): string {
  const file = join(DATA_ROOT, 'dev-token');
  if (!process.env.DEV_TOKEN && existsSync(file)) return readFileSync(file, 'utf8').trim();
  // The file always holds the token in use: the CLI reads it, and a 401 points at it.
  const token = process.env.DEV_TOKEN || `dev-${randomBytes(12).toString('hex')}`;
  mkdirSync(DATA_ROOT, { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

async function main(): Promise<void> {
  const token = devToken();
  const env = process.env.AGENT_ENV ?? 'default';
  const log = pino({ level: process.env.LOG_LEVEL ?? 'info', transport: process.stdout.isTTY ? { target: 'pino-pretty' } : undefined });

  let server: Awaited<ReturnType<typeof createServer>> | undefined;
  let agent: Awaited<ReturnType<typeof createAgent>> | undefined;
  // Which port variable to name if listening fails.
  let portVar = 'PORT';
  try {
    const serverConfig = loadServerConfig({
      // The agent's env exists from the start; others are created with `npx factsync envs create NAME`.
      ...process.env, AUTH_TOKENS: process.env.AUTH_TOKENS ?? `${token}=admin:*`, REPLICA_ID: 'dev', DATA_DIR: join(DATA_ROOT, 'server'),
      ENVS: [env, ...(process.env.ENVS ?? '').split(',')].filter(Boolean).join(','),
    });
    // Unless AUTH_TOKENS was given, the only token is the dev token: a 401 says where it is.
    const unknownTokenHint = process.env.AUTH_TOKENS || process.env.DEV_TOKEN ? undefined
      : `npm start's token is in ${join(DATA_ROOT, 'dev-token')} (printed at start; it changes only when that file is deleted)`;
    server = await createServer(serverConfig, { logger: log.child({ component: 'server' }), unknownTokenHint });
    const serverUrl = await server.listen();
    portVar = 'AGENT_PORT';
    const agentConfig = loadAgentConfig({
      ...process.env, PORT: process.env.AGENT_PORT ?? '7766', SERVER_URL: serverUrl, AGENT_TOKEN: token, AGENT_ENV: env, AGENT_ID: process.env.AGENT_ID ?? 'dev-agent',
      DATA_DIR: join(DATA_ROOT, 'agent'),
    });
    agent = await createAgent(agentConfig, { logger: log.child({ component: 'agent' }) });
    const agentUrl = await agent.start();

    process.stdout.write([
      '',
      'factsync is running',
      `  server     ${serverUrl}   (store: ${server.store.kind === 'embedded' ? `embedded, in ${join(DATA_ROOT, 'server')}` : server.store.kind}, API docs ${serverUrl}/docs)`,
      `  agent      ${agentUrl}   (env "${env}")`,
      `  dev token  ${token}`,
      `  status     ${serverUrl}/#token=${token}&env=${env}   (the page connects by itself)`,
      '',
      'for the README and the CLI:',
      `  export TOKEN=${token}`,
      '',
      'try:',
      `  curl -X POST ${serverUrl}/v1/envs/${env}/facts -H 'authorization: Bearer ${token}' -H 'content-type: application/json' \\`,
      `    -d '{"ops":[{"op":"upsert","type":"user","key":"john@smith.com","value":{"email":"john@smith.com"}}]}'`,
      `  curl ${agentUrl}/v1/facts/user/john@smith.com`,
      '',
    ].join('\n') + '\n');
  } catch (e) {
    // A taken port, an unreachable Redis, a bad setting: one line, no stack trace.
    process.stderr.write(`factsync: cannot start: ${describeStartupError(e, portVar)}\n`);
    await agent?.close().catch(() => undefined);
    await server?.close().catch(() => undefined);
    process.exit(e instanceof ConfigError ? 2 : 1);
  }
  const s = server, a = agent;
  runUntilSignal(async () => {
    await a.close();
    await s.close();
  }, 10_000, log);
}

void main();
