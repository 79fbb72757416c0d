/**
 * Small typed readers for environment variables. A bad value throws a ConfigError
 * whose message is the one line main.ts prints before exiting.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionLimits } from './connection-guard.js';
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type Env = Record<string, string | undefined>;

export function readInt(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw.trim());
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: expected an integer from ${min} to ${max}`);
  }
  return n;
}

export function readString(env: Env, name: string, fallback: string, pattern?: RegExp, hint?: string): string {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const v = raw.trim();
  if (pattern && !pattern.test(v)) throw new ConfigError(`${name}=${JSON.stringify(raw)} is invalid: ${hint ?? `must match ${pattern}`}`);
  return v;
}

export function readBool(env: Env, name: string, fallback: boolean): boolean {
  const v = readString(env, name, String(fallback), /^(true|false|1|0)$/i, 'use true or false').toLowerCase();
  return v === 'true' || v === '1';
}

export function readOptional(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export const readLogLevel = (env: Env): string =>
  readString(env, 'LOG_LEVEL', 'info', new RegExp(`^(${LEVELS.join('|')})$`), `use one of ${LEVELS.join(', ')}`);

/** `example` is what the message offers instead (a URL of the right scheme and the service's usual port). */
export function readUrl(env: Env, name: string, raw: string, protocols: string[], example: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`${name} contains ${JSON.stringify(raw)}, which is not a URL (e.g. ${example})`);
  }
  if (!protocols.includes(u.protocol)) throw new ConfigError(`${name}=${JSON.stringify(raw)}: the scheme must be ${protocols.join(' or ')}`);
  return u;
}

/**
 * The one line a main prints for a start-up failure a user can fix (a taken
 * port, an unreachable Redis), instead of a stack trace. `portVar` names the
 * variable that sets the port that failed.
 */
export function describeStartupError(e: unknown, portVar = 'PORT'): string {
  const err = e as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e instanceof ConfigError) return e.message;
  if (err?.code === 'EADDRINUSE') {
    return `port ${err.port ?? '?'} on ${err.address ?? 'this host'} is already in use (another factsync, or another program): stop it or set ${portVar} to a free port`;
  }
  if (err?.code === 'EACCES') return `not allowed to listen on port ${err.port ?? '?'}: use a port above 1023 or set ${portVar}`;
  if (err?.code === 'EADDRNOTAVAIL') return `cannot listen on ${err.address ?? 'that address'}: set HOST to an address of this machine`;
  return err instanceof Error ? err.message : String(e);
}

/** The connection limits of an HTTP server (connection-guard.ts), one set of variables for the server and the agent. */
export function readConnectionLimits(env: Env, defaults: ConnectionLimits): ConnectionLimits {
  // Past the process's file limit nothing works, health checks included: by default stay well under it.
  const files = openFilesLimit();
  const fit = files === undefined ? defaults.maxConnections : Math.max(64, Math.min(defaults.maxConnections, Math.floor(files * 0.8) - defaults.healthReserve));
  return {
    maxConnections: readInt(env, 'MAX_CONNECTIONS', fit, 1),
    maxPerAddress: readInt(env, 'MAX_CONNECTIONS_PER_ADDRESS', defaults.maxPerAddress, 1),
    healthReserve: defaults.healthReserve,
    firstByteTimeoutMs: readInt(env, 'FIRST_BYTE_TIMEOUT_MS', defaults.firstByteTimeoutMs, 100),
    headersTimeoutMs: readInt(env, 'HTTP_HEADERS_TIMEOUT_MS', defaults.headersTimeoutMs, 100),
    requestTimeoutMs: readInt(env, 'HTTP_REQUEST_TIMEOUT_MS', defaults.requestTimeoutMs, 100),
    keepAliveTimeoutMs: readInt(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', defaults.keepAliveTimeoutMs, 100),
  };
}

/** The soft RLIMIT_NOFILE of this process (Linux), or undefined where it cannot be read. */
function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** An address that only this host can reach (the agent's default bind). */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}
