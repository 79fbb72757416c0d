import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Limits on connections of an HTTP server (the server's and the agent's):
 * invariant 10 for sockets. Without them, 20,000 silent TCP connections use up
 * every file descriptor and a header line every 10 s holds a socket for ever.
 */
export interface ConnectionLimits {
  /** Open connections at most; past it, only health and metrics requests are served (429 for the rest). */
  maxConnections: number;
  /** Open connections from one remote address at most, likewise. */
  maxPerAddress: number;
  /** Room past either limit kept for health checks; beyond it a connection is closed at once. */
  healthReserve: number;
  /** A connection that sends nothing for this long is closed (it has not started a request). */
  firstByteTimeoutMs: number;
  /** The request's headers must arrive within this (slowloris). */
  headersTimeoutMs: number;
  /** The whole request (headers and body) must arrive within this; the answer may take longer. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 20_000,
  maxPerAddress: 5_000,
  healthReserve: 64,
  firstByteTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 10_000,
};

/** Paths still served past a limit, so that a probe can tell a busy process from a dead one. */
const HEALTH_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/health', '/healthy', '/ready']);
export const isHealthPath = (url: string): boolean => HEALTH_PATHS.has(url.split('?')[0]!);

const OVER = Symbol('factsync.overLimit');
type Guarded = Socket & { [OVER]?: string };

/** Why this request's connection is past a limit (to be answered 429), or undefined. */
export const overLimit = (socket: Socket): string | undefined => (socket as Guarded)[OVER];

/** Applies `limits` to `server`: its timeouts, and a count of connections in all and per address. */
export function guardConnections(server: Server, limits: ConnectionLimits): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // How often Node checks headersTimeout and requestTimeout, read when it starts listening (its default is 30 s).
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.max(250, Math.min(5_000, Math.floor(limits.headersTimeoutMs / 4)));
  const perAddress = new Map<string, number>();
  let open = 0;
  server.on('connection', (socket: Guarded) => {
    const addr = socket.remoteAddress ?? '?';
    const mine = (perAddress.get(addr) ?? 0) + 1;
    open++;
    perAddress.set(addr, mine);
    socket.once('close', () => {
      open--;
      const n = (perAddress.get(addr) ?? 1) - 1;
      if (n <= 0) perAddress.delete(addr);
      else perAddress.set(addr, n);
    });
    if (open > limits.maxConnections + limits.healthReserve || mine > limits.maxPerAddress + limits.healthReserve) {
      socket.destroy();
      return;
    }
    if (open > limits.maxConnections) socket[OVER] = `${open - 1} connections are open (most ${limits.maxConnections})`;
    else if (mine > limits.maxPerAddress) socket[OVER] = `${mine - 1} connections are open from ${addr} (most ${limits.maxPerAddress})`;
    // A socket that never sends a byte holds a descriptor for ever: Node's own timeouts start with a request.
    // A timer of our own, not socket.setTimeout: Node's HTTP server destroys a socket on any 'timeout' it
    // has no listener for, which would cut a long wait for sync. Neither a 'data' listener: under TLS the
    // raw socket's bytes belong to the TLS layer.
    const firstByte = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy();
    }, limits.firstByteTimeoutMs);
    firstByte.unref();
    socket.once('close', () => clearTimeout(firstByte));
  });
}
