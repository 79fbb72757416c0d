import { hostname } from 'node:os';
import { nanoid } from 'nanoid';
import { tokenFile, type TokenSource } from './token-source.js';
import type { AgentTlsFiles } from './agent-tls.js';
import { readPemFiles } from '@factsync/shared/tls-files';
import { AGENT_ID_PATTERN, ConfigError, ENV_PATTERN, isLoopbackHost, parseTenantsList, readBool as bool, readConnectionLimits, readInt as int, readLogLevel, readString as str, type Env } from '@factsync/shared';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '@factsync/shared/http-app';

export { ConfigError };

export interface AgentConfig {
  port: number;
  host: string;
  serverUrls: URL[];
  /** The token for requests (`current`) and for each websocket connect (`fresh`: re-reads AGENT_TOKEN_FILE). */
  token: { current: TokenSource; fresh: TokenSource };
  env: string;
  agentId: string;
  dataDir: string | undefined;
  /** A scoped agent holds only these tenants' share of the env (undefined: the whole env). */
  tenants: readonly string[] | undefined;
  /** TLS to https:// servers: an extra CA, a client certificate (mutual TLS). */
  tls: AgentTlsFiles;
  /** Stay unready while offline even with a state restored from DATA_DIR. */
  readyRequiresSync: boolean;
  logLevel: string;
  apiToken: string | undefined;
  /** Listen beyond loopback without AGENT_API_TOKEN (a network policy guards the port). */
  apiInsecure: boolean;
  /** Connection counts and HTTP timeouts of the local API. */
  limits: ConnectionLimits;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** No frame or ping from the server for this long means the connection is dead. */
  serverTimeoutMs: number;
  persistIntervalMs: number;
  shutdownTimeoutMs: number;
  /** Wait of a write or an `at_least` read that sends no X-Wait-Timeout. */
  defaultWaitSeconds: number;
  bodyLimitBytes: number;
  /** Test and audit aid: append `{v, h, kind}` per applied version (h = state hash) to this file. */
  historyFile: string | undefined;
  /** Log every decision (user, action, resource, allow, version, reason) at info. */
  decisionLog: boolean;
  /** How often the user keys checked are reported to the server (MAU). */
  usageReportMs: number;
}

function serverUrls(raw: string): URL[] {
  const urls = raw.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new ConfigError(`SERVER_URL contains ${JSON.stringify(s)}, which is not a URL (e.g. http://127.0.0.1:7002)`);
    }
    if (!['http:', 'https:'].includes(u.protocol)) throw new ConfigError(`SERVER_URL ${JSON.stringify(s)}: use http:// or https://`);
    return u;
  });
  if (urls.length === 0) throw new ConfigError('SERVER_URL is empty: give one or more server URLs, comma separated');
  return urls;
}

/** Without a token the agent could only be refused for ever: say so at start-up instead. */
function agentToken(env: Env): { current: TokenSource; fresh: TokenSource } {
  const file = env.AGENT_TOKEN_FILE?.trim();
  if (file) {
    if (env.AGENT_TOKEN?.trim()) throw new ConfigError('set AGENT_TOKEN or AGENT_TOKEN_FILE, not both');
    return tokenFile(file);
  }
  const token = env.AGENT_TOKEN?.trim();
  if (!token) throw new ConfigError('AGENT_TOKEN is empty: set it to a token whose role is agent (or admin) in the server\'s AUTH_TOKENS (or AGENT_TOKEN_FILE to a file holding one); npm start prints one');
  return { current: () => token, fresh: () => token };
}

function tlsFiles(env: Env): AgentTlsFiles {
  const t = { caFile: env.SERVER_CA_FILE?.trim() || undefined, certFile: env.AGENT_CERT_FILE?.trim() || undefined, keyFile: env.AGENT_KEY_FILE?.trim() || undefined };
  if (Boolean(t.certFile) !== Boolean(t.keyFile)) throw new ConfigError(`a client certificate needs both AGENT_CERT_FILE and AGENT_KEY_FILE (${t.certFile ? 'AGENT_KEY_FILE' : 'AGENT_CERT_FILE'} is missing)`);
  readPemFiles({ SERVER_CA_FILE: t.caFile, AGENT_CERT_FILE: t.certFile, AGENT_KEY_FILE: t.keyFile });
  return t;
}

function agentTenants(env: Env): readonly string[] | undefined {
  const raw = env.AGENT_TENANTS?.trim();
  if (!raw) return undefined;
  const t = parseTenantsList(raw);
  if (!t.ok) throw new ConfigError(`AGENT_TENANTS: ${t.error}; give tenant keys, comma separated (e.g. acme,globex), or leave it unset to hold the whole env`);
  return Object.freeze(t.value);
}

/**
 * The local API writes with the agent's own token: open to whoever reaches it. Without AGENT_API_TOKEN it
 * listens only on loopback, unless the operator says a network policy guards it.
 */
function apiExposure(env: Env, host: string): { apiToken: string | undefined; apiInsecure: boolean } {
  const apiToken = env.AGENT_API_TOKEN?.trim() || undefined;
  const apiInsecure = bool(env, 'AGENT_API_INSECURE', false);
  if (!apiToken && !apiInsecure && !isLoopbackHost(host)) {
    throw new ConfigError(`HOST=${host} without AGENT_API_TOKEN would let anyone who reaches this port write with the agent's token: set AGENT_API_TOKEN (clients send it as a bearer token), bind HOST=127.0.0.1, or set AGENT_API_INSECURE=true if a network policy guards the port`);
  }
  return { apiToken, apiInsecure };
}

/** The agent's local API serves one host's applications: one address may hold them all. */
const AGENT_CONNECTION_LIMITS: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, maxConnections: 10_000, maxPerAddress: 10_000 };

/** Reads and validates every agent setting once (docs/operations.md, "Configuration"). */
export function loadAgentConfig(env: Env): Readonly<AgentConfig> {
  const reconnectMinMs = int(env, 'RECONNECT_MIN_MS', 200, 10);
  const host = str(env, 'HOST', '127.0.0.1');
  return Object.freeze({
    port: int(env, 'PORT', 7766, 0, 65535),
    host,
    ...apiExposure(env, host),
    limits: readConnectionLimits(env, AGENT_CONNECTION_LIMITS),
    serverUrls: serverUrls(env.SERVER_URL ?? 'http://127.0.0.1:7002'),
    token: agentToken(env),
    env: str(env, 'AGENT_ENV', 'default', new RegExp(ENV_PATTERN), 'use 1-64 of A-Z a-z 0-9 _ -'),
    agentId: str(env, 'AGENT_ID', `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 100)}-${nanoid(6)}`,
      new RegExp(AGENT_ID_PATTERN), 'use 1-128 of A-Z a-z 0-9 _ . : @ -'),
    dataDir: env.DATA_DIR?.trim() || undefined,
    tenants: agentTenants(env),
    readyRequiresSync: bool(env, 'READY_REQUIRES_SYNC', false),
    tls: tlsFiles(env),
    logLevel: readLogLevel(env),
    reconnectMinMs,
    reconnectMaxMs: int(env, 'RECONNECT_MAX_MS', 10_000, reconnectMinMs),
    serverTimeoutMs: int(env, 'SERVER_TIMEOUT_MS', 30_000, 100),
    persistIntervalMs: int(env, 'PERSIST_INTERVAL_MS', 1_000, 10),
    shutdownTimeoutMs: int(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 100),
    defaultWaitSeconds: int(env, 'DEFAULT_WAIT_SECONDS', 10, 0, 3600),
    bodyLimitBytes: int(env, 'BODY_LIMIT_BYTES', 16 * 1024 * 1024, 1024),
    historyFile: env.HISTORY_FILE?.trim() || undefined,
    decisionLog: bool(env, 'DECISION_LOG', false),
    usageReportMs: int(env, 'USAGE_REPORT_MS', 1_000, 10, 3_600_000),
  });
}
