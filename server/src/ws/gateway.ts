import { SnapshotReads } from './snapshot-reads.js';
import type { FastifyInstance } from 'fastify';
import type { EnvDirectory } from '../env-directory.js';
import { ErrorCodes, FactsyncError, closeReason } from '@factsync/shared';
import { TokenSlots } from '../token-slots.js';
import type { Logger } from 'pino';
import type { Authenticator, Principal } from '../auth.js';
import type { FactLog, SessionRegistry, UsageLedger } from '../store/fact-store.js';
import type { Broadcaster } from '../broadcast/broadcaster.js';
import type { ControlPlane } from '../control/control-plane.js';
import { Session } from './session.js';
import type { ServerMetrics } from '../metrics.js';

export interface GatewayOptions {
  store: FactLog & SessionRegistry & UsageLedger;
  broadcaster: Broadcaster;
  control: ControlPlane;
  auth: Authenticator;
  metrics: ServerMetrics;
  log: Logger;
  replicaId: string;
  leaseMs: number;
  leaseRenewMs: number;
  pingIntervalMs: number;
  pageSize: number;
  frameBytes: number;
  /** Snapshots this replica streams at once; more sessions wait their turn. */
  maxSnapshotStreams: number;
  maxBufferedBytes: number;
  maxPayloadBytes: number;
  helloTimeoutMs: number;
  maxConnectionsPerToken: number;
  /** False once the store has not answered for STORE_LOST_MS: new sessions are refused (503). */
  storeReachable(): boolean;
  /** A hello for an env that does not exist is closed 4404 (the agent waits for it). */
  envs: EnvDirectory;
}

const STORE_LOST = 'this replica cannot reach its store: connect to another replica';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/**
 * `/v1/ws`: authenticates the upgrade request (a bad token is an HTTP 401/403,
 * never an open socket), then hands the socket to a Session. It also owns the
 * two timers every socket needs: ws ping (presence) and lease renewal, which
 * keeps acking agents "connected" in the store while this replica lives.
 */
export class Gateway {
  /** One per replica: shared snapshot reads and the bound on concurrent snapshot streams. */
  readonly snapshots: SnapshotReads;

  readonly sessions = new Set<Session>();
  /** Sessions by their id, so a replacement announced by the control plane finds its socket. */
  private readonly byConn = new Map<string, Session>();
  /** Websockets per token (MAX_CONNECTIONS_PER_TOKEN). */
  private readonly perToken: TokenSlots;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly leaseTimer: NodeJS.Timeout;
  private closing = false;

  constructor(private readonly opts: GatewayOptions) {
    this.perToken = new TokenSlots(opts.maxConnectionsPerToken, 'websockets', 'MAX_CONNECTIONS_PER_TOKEN');
    this.snapshots = new SnapshotReads(opts.store, opts.maxSnapshotStreams, opts.frameBytes, opts.pageSize);
    this.pingTimer = setInterval(() => {
      for (const s of this.sessions) s.ping();
    }, opts.pingIntervalMs);
    this.pingTimer.unref();
    this.leaseTimer = setInterval(() => void this.renewLeases(), opts.leaseRenewMs);
    this.leaseTimer.unref();
  }

  register(app: FastifyInstance): void {
    app.get('/v1/ws', {
      websocket: true,
      onRequest: async (req) => {
        if (!this.opts.storeReachable()) throw new FactsyncError('store_unavailable', STORE_LOST);
        const p = await this.opts.auth.authenticate(req.headers.authorization);
        // Refused before the upgrade (a 429); the slot itself is taken once the socket exists.
        this.perToken.check(p.tokenIndex);
        req.principal = p;
      },
    }, (socket, req) => {
      if (this.closing) {
        socket.close(1001, 'server shutting down');
        return;
      }
      const principal = req.principal;
      if (!principal) {
        socket.close(4401, 'unauthenticated');
        return;
      }
      let release: () => void;
      try {
        release = this.perToken.acquire(principal.tokenIndex);
      } catch (e) {
        // Upgrades of one token that passed the check together: the one past the limit goes.
        socket.close(ErrorCodes.too_many_connections.close, closeReason((e as Error).message));
        return;
      }
      const session = new Session(socket, principal, {
        store: this.opts.store,
        broadcaster: this.opts.broadcaster,
        control: this.opts.control,
        metrics: this.opts.metrics,
        log: this.opts.log,
        replicaId: this.opts.replicaId,
        leaseMs: this.opts.leaseMs,
        pageSize: this.opts.pageSize,
        frameBytes: this.opts.frameBytes,
        snapshots: this.snapshots,
        maxBufferedBytes: this.opts.maxBufferedBytes,
        maxPayloadBytes: this.opts.maxPayloadBytes,
        helloTimeoutMs: this.opts.helloTimeoutMs,
        envs: this.opts.envs,
        onClosed: (s) => {
          this.sessions.delete(s);
          this.byConn.delete(s.conn);
          release();
        },
      });
      this.sessions.add(session);
      this.byConn.set(session.conn, session);
    });
  }

  /** The control plane says this session's agent id now belongs to a newer session (invariant 8). */
  replaced(session: string): void {
    this.byConn.get(session)?.replaced();
  }

  /**
   * Renews the leases of live sessions. A session the store no longer knows as
   * its agent's (a newer hello elsewhere whose event this replica missed) is closed.
   */
  private async renewLeases(): Promise<void> {
    const byEnv = new Map<string, Session[]>();
    for (const s of this.sessions) {
      if (!s.acking || !s.env || !s.isRegistered) continue;
      let list = byEnv.get(s.env);
      if (!list) byEnv.set(s.env, (list = []));
      list.push(s);
    }
    await Promise.all([...byEnv].map(async ([env, list]) => {
      try {
        const lost = new Set(await this.opts.store.renewSessions(env, list.map((s) => [s.agentId, s.conn] as const), this.opts.leaseMs));
        for (const s of list) if (lost.has(s.agentId) && s.isRegistered) s.replaced();
      } catch (e) {
        this.opts.log.warn({ env, agents: list.length, err: (e as Error).message }, 'lease renewal failed');
      }
    }));
  }

  /**
   * The store has not answered for STORE_LOST_MS. Every session is closed with
   * 1013 (retryable): an agent moves to its next SERVER_URL, where a replica that
   * reaches the store resumes it from its last applied version.
   */
  storeLost(): void {
    const close = ErrorCodes.store_unavailable.close;
    for (const s of [...this.sessions]) s.close(close, STORE_LOST);
  }

  /** Stop accepting and close every socket with 1001 so agents reconnect to another replica at once. */
  closeAll(): void {
    this.closing = true;
    clearInterval(this.pingTimer);
    clearInterval(this.leaseTimer);
    for (const s of [...this.sessions]) s.close(1001, 'server shutting down');
  }
}
