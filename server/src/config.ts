import { nanoid } from 'nanoid';
import { ConfigError, ENV_PATTERN, readBool, readConnectionLimits, readInt, readLogLevel, readOptional, readString, readUrl, type Env } from '@factsync/shared';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '@factsync/shared/http-app';
import { parseTokens, type TokenGrant } from './static-tokens.js';
import type { JwtOptions } from './jwt.js';
import { readPemFiles } from '@factsync/shared/tls-files';

export interface ServerConfig {
  port: number;
  host: string;
  redisUrl: string | undefined;
  /** REDIS_URL is a comma list of seed nodes of a Redis Cluster. */
  redisCluster: boolean;
  keyPrefix: string;
  tokens: TokenGrant[];
  /** AUTH_TOKENS_FILE: more static tokens, re-read when the file changes. */
  authTokensFile: string | undefined;
  /** TLS_*: serve HTTPS/WSS; with a client CA, require client certificates (mutual TLS). */
  tls: { certFile: string; keyFile: string; clientCaFile: string | undefined } | undefined;
  /** JWT_*: accept (and with a secret, mint) JWTs; undefined = static tokens only. */
  jwt: JwtOptions | undefined;
  logRetention: number;
  logLevel: string;
  replicaId: string;
  bodyLimitBytes: number;
  maxOpsPerWrite: number;
  idempotencyTtlSeconds: number;
  inlineChangeBytes: number;
  redisCommandTimeoutMs: number;
  pingIntervalMs: number;
  leaseMs: number;
  storeLostMs: number;
  leaseRenewMs: number;
  healIntervalMs: number;
  syncRefreshMs: number;
  defaultWaitSeconds: number;
  wsMaxBufferedBytes: number;
  wsMaxPayloadBytes: number;
  changesPageSize: number;
  /** Largest websocket frame the server builds (a catch-up page, a live batch); one larger change travels alone. */
  wsMaxFrameBytes: number;
  /** Snapshots one replica streams at once (the rest queue). */
  maxSnapshotStreams: number;
  shutdownTimeoutMs: number;
  maxConnectionsPerToken: number;
  /** Connection counts and HTTP timeouts (invariant 10). */
  limits: ConnectionLimits;
  /** A websocket that sends no hello within this is closed. */
  helloTimeoutMs: number;
  /** Requests waiting for sync (long-polls) per token on one replica. */
  maxWaitsPerToken: number;
  /** Label metrics with agent ids (client-chosen: off by default). */
  metricsAgentLabels: boolean;
  /** Open status streams (SSE) per token on one replica. */
  maxStreamsPerToken: number;
  /** A status stream whose client lets this much queue up unread is closed. */
  streamMaxBufferedBytes: number;
  agentRecordTtlMs: number;
  redisWaitReplicas: number;
  redisWaitTimeoutMs: number;
  /** Where the embedded store keeps its data (without REDIS_URL); unset = in memory only. */
  dataDir: string | undefined;
  /** ENVS: envs created at start. */
  envs: readonly string[];
  /** ENVS_AUTO_CREATE: a first write (or hello) creates its env, as before envs were explicit. */
  envsAutoCreate: boolean;
}

function envList(env: Env): string[] {
  const raw = readOptional(env, 'ENVS');
  if (!raw) return [];
  const names = raw.split(',').map((e) => e.trim()).filter(Boolean);
  const re = new RegExp(ENV_PATTERN);
  const bad = names.find((e) => !re.test(e));
  if (bad !== undefined) throw new ConfigError(`ENVS: "${bad.slice(0, 80)}" is not an env name: use a comma list of names of 1-64 of A-Z a-z 0-9 _ -, e.g. ENVS=default,staging`);
  return [...new Set(names)];
}

/** Reads and validates every setting once; nothing else reads process.env. */
function tlsOptions(env: Record<string, string | undefined>): ServerConfig['tls'] {
  const certFile = env.TLS_CERT_FILE?.trim() || undefined;
  const keyFile = env.TLS_KEY_FILE?.trim() || undefined;
  const clientCaFile = env.TLS_CLIENT_CA_FILE?.trim() || undefined;
  if (!certFile && !keyFile) {
    if (clientCaFile) throw new ConfigError('TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE: mutual TLS is TLS first');
    return undefined;
  }
  if (!certFile || !keyFile) throw new ConfigError(`TLS needs both TLS_CERT_FILE and TLS_KEY_FILE (${certFile ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'} is missing)`);
  readPemFiles({ TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, TLS_CLIENT_CA_FILE: clientCaFile });
  return { certFile, keyFile, clientCaFile };
}

function jwtOptions(env: Record<string, string | undefined>): JwtOptions | undefined {
  const o: JwtOptions = {};
  const set = (k: Exclude<keyof JwtOptions, 'allowNoExp'>, name: string): void => {
    const v = env[name]?.trim();
    if (v) o[k] = v;
  };
  set('secret', 'JWT_SECRET');
  set('jwksUrl', 'JWT_JWKS_URL');
  set('jwksFile', 'JWT_JWKS_FILE');
  set('issuer', 'JWT_ISSUER');
  set('audience', 'JWT_AUDIENCE');
  set('subjects', 'JWT_SUBJECTS');
  if (readBool(env, 'JWT_ALLOW_NO_EXP', false)) o.allowNoExp = true;
  if (!o.secret && !o.jwksUrl && !o.jwksFile) {
    if (o.issuer || o.audience || o.subjects) throw new ConfigError('JWT_ISSUER, JWT_AUDIENCE and JWT_SUBJECTS are about JWTs: set JWT_SECRET, JWT_JWKS_URL or JWT_JWKS_FILE too');
    return undefined;
  }
  if (o.jwksUrl && o.jwksFile) throw new ConfigError('set JWT_JWKS_URL or JWT_JWKS_FILE, not both');
  return o;
}

export function loadServerConfig(env: Env): Readonly<ServerConfig> {
  const redisUrl = readOptional(env, 'REDIS_URL');
  const redisCluster = readString(env, 'REDIS_CLUSTER', 'false', /^(true|false)$/, 'use true or false') === 'true';
  if (redisUrl) {
    const urls = redisCluster ? redisUrl.split(',') : [redisUrl];
    for (const u of urls) readUrl(env, 'REDIS_URL', u.trim(), ['redis:', 'rediss:'], 'redis://127.0.0.1:6379');
  }
  if (redisCluster && !redisUrl) throw new ConfigError('REDIS_CLUSTER=true needs REDIS_URL: a comma list of seed nodes, e.g. redis://10.0.0.1:6379,redis://10.0.0.2:6379');
  const redisWaitReplicas = readInt(env, 'REDIS_WAIT_REPLICAS', 0, 0, 100);
  if (redisWaitReplicas > 0 && redisCluster) throw new ConfigError('REDIS_WAIT_REPLICAS is not supported with REDIS_CLUSTER=true (WAIT must reach the shard of each env); use 0');
  if (redisWaitReplicas > 0 && !redisUrl) throw new ConfigError('REDIS_WAIT_REPLICAS needs REDIS_URL: the embedded store has no replicas');
  const pingIntervalMs = readInt(env, 'PING_INTERVAL_MS', 10_000, 100, 600_000);
  const leaseMs = readInt(env, 'LEASE_MS', Math.max(30_000, pingIntervalMs * 3), 300);
  if (leaseMs <= pingIntervalMs * 2) {
    throw new ConfigError(`LEASE_MS=${leaseMs} must be more than twice PING_INTERVAL_MS=${pingIntervalMs}, or live agents would flap`);
  }
  const storeLostMs = readInt(env, 'STORE_LOST_MS', Math.floor(leaseMs / 2), 100);
  if (storeLostMs >= leaseMs) {
    throw new ConfigError(`STORE_LOST_MS=${storeLostMs} must be less than LEASE_MS=${leaseMs}, or agents of a replica cut from its store would count as gone before they move`);
  }
  return Object.freeze({
    port: readInt(env, 'PORT', 7002, 0, 65535),
    host: readString(env, 'HOST', '127.0.0.1'),
    redisUrl,
    redisCluster,
    keyPrefix: readString(env, 'KEY_PREFIX', 'fs', /^[A-Za-z0-9_.-]{1,32}$/, 'use 1-32 of A-Z a-z 0-9 _ . -'),
    tokens: parseTokens(env.AUTH_TOKENS ?? ''),
    authTokensFile: env.AUTH_TOKENS_FILE?.trim() || undefined,
    jwt: jwtOptions(env),
    tls: tlsOptions(env),
    logRetention: readInt(env, 'LOG_RETENTION', 100_000, 1),
    logLevel: readLogLevel(env),
    replicaId: readString(env, 'REPLICA_ID', `replica-${nanoid(8)}`, /^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 of A-Z a-z 0-9 _ . -'),
    bodyLimitBytes: readInt(env, 'BODY_LIMIT_BYTES', 8 * 1024 * 1024, 1024),
    maxOpsPerWrite: readInt(env, 'MAX_OPS_PER_WRITE', 20_000, 1),
    idempotencyTtlSeconds: readInt(env, 'IDEMPOTENCY_TTL_SECONDS', 24 * 3600, 1),
    inlineChangeBytes: readInt(env, 'INLINE_CHANGE_BYTES', 64 * 1024, 0),
    redisCommandTimeoutMs: readInt(env, 'REDIS_COMMAND_TIMEOUT_MS', 5_000, 10),
    pingIntervalMs,
    leaseMs,
    storeLostMs,
    leaseRenewMs: Math.max(50, Math.floor(leaseMs / 3)),
    healIntervalMs: readInt(env, 'HEAL_INTERVAL_MS', 1_000, 10),
    syncRefreshMs: readInt(env, 'SYNC_REFRESH_MS', 1_000, 10),
    defaultWaitSeconds: readInt(env, 'DEFAULT_WAIT_SECONDS', 10, 0, 3600),
    wsMaxBufferedBytes: readInt(env, 'WS_MAX_BUFFERED_BYTES', 64 * 1024 * 1024, 1024),
    wsMaxPayloadBytes: readInt(env, 'WS_MAX_PAYLOAD_BYTES', 64 * 1024, 256),
    changesPageSize: readInt(env, 'CHANGES_PAGE_SIZE', 1_000, 1, 100_000),
    wsMaxFrameBytes: readInt(env, 'WS_MAX_FRAME_BYTES', 1024 * 1024, 1024, 256 * 1024 * 1024),
    maxSnapshotStreams: readInt(env, 'MAX_SNAPSHOT_STREAMS', 8, 1),
    shutdownTimeoutMs: readInt(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 100),
    maxConnectionsPerToken: readInt(env, 'MAX_CONNECTIONS_PER_TOKEN', 50_000, 1),
    limits: readConnectionLimits(env, DEFAULT_CONNECTION_LIMITS),
    helloTimeoutMs: readInt(env, 'HELLO_TIMEOUT_MS', 10_000, 100),
    maxWaitsPerToken: readInt(env, 'MAX_WAITS_PER_TOKEN', 10_000, 1),
    metricsAgentLabels: readBool(env, 'METRICS_AGENT_LABELS', false),
    maxStreamsPerToken: readInt(env, 'MAX_STREAMS_PER_TOKEN', 16, 1),
    streamMaxBufferedBytes: readInt(env, 'STREAM_MAX_BUFFERED_BYTES', 1024 * 1024, 1024),
    agentRecordTtlMs: readInt(env, 'AGENT_RECORD_TTL_MS', 24 * 3600_000, 1000),
    redisWaitReplicas,
    redisWaitTimeoutMs: readInt(env, 'REDIS_WAIT_TIMEOUT_MS', 1_000, 1, 60_000),
    dataDir: redisUrl ? undefined : readOptional(env, 'DATA_DIR'),
    envs: envList(env),
    envsAutoCreate: readBool(env, 'ENVS_AUTO_CREATE', false),
  });
}
