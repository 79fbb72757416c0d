import WebSocket from 'ws';
import type { Logger } from 'pino';
import { describeTlsError, type TlsConnectOptions } from './agent-tls.js';
import { ErrorCodes, backoffDelayMs, isRetryableClose, parseServerMessage, type ClientMessage, type ServerMessage } from '@factsync/shared';

export interface ConnectionOptions {
  urls: readonly URL[];
  /** Read at every connect: a rotated AGENT_TOKEN_FILE is picked up. */
  token: () => string | undefined;
  /** TLS options for https:// servers (an extra CA, a client certificate), read at every connect. */
  tls?: () => TlsConnectOptions;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  serverTimeoutMs: number;
  maxPayloadBytes?: number;
  /** Named in the error when another agent with the same id takes our session over. */
  agentId?: string;
  log: Logger;
}

/** idle → connecting → open → (retrying → connecting → …) → closed; changed only by `setState`. */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'retrying' | 'closed';

export interface ConnectionHandlers {
  /** Called on every open socket; the hello carries what is applied at that moment. */
  hello(): ClientMessage;
  message(m: ServerMessage): void;
  /** A frame that does not parse (counted; the socket is dropped and the next connect backs off). */
  invalidFrame?(problem: string): void;
  /** Socket opened (true) or lost (false). */
  connected(up: boolean): void;
}

/**
 * The agent's one websocket to a server replica. It reconnects for ever with
 * full-jitter exponential backoff, moving to the next `SERVER_URL` on every
 * attempt so a dead replica is left at once, and declares the socket dead when
 * the server has been silent (no frame, no ping) for `serverTimeoutMs`.
 */
export class Connection {
  private ws: WebSocket | undefined;
  private urlIndex = 0;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private stateValue: ConnectionState = 'idle';
  reconnects = 0;
  /**
   * Sessions in a row that ended on a frame we could not parse. A welcome does
   * not reset it (the same bad version comes right after every welcome), only a
   * frame that moved the stream on does: so a server that keeps sending what we
   * refuse is retried with a growing delay, never in a tight loop.
   */
  private badFrameStreak = 0;
  /** The last refusal said (code and reason): the same one at the next slow retry is not logged again. */
  private lastRefusal: string | undefined;

  get state(): ConnectionState {
    return this.stateValue;
  }

  private setState(next: ConnectionState): void {
    const prev = this.stateValue;
    if (prev === next) return;
    this.stateValue = next;
    this.opts.log.debug({ newState: next, oldState: prev }, 'connection state');
    if (next === 'open') this.handlers.connected(true);
    else if (prev === 'open') this.handlers.connected(false);
  }

  constructor(private readonly opts: ConnectionOptions, private readonly handlers: ConnectionHandlers) {}

  get isOpen(): boolean {
    return this.stateValue === 'open' && this.ws?.readyState === WebSocket.OPEN;
  }

  /** The base URL of the replica this socket talks to (HTTP repair goes to the same one). */
  get serverUrl(): URL {
    return this.opts.urls[this.urlIndex % this.opts.urls.length]!;
  }

  start(): void {
    this.open();
  }

  send(m: ClientMessage): boolean {
    if (!this.isOpen) return false;
    this.ws!.send(JSON.stringify(m));
    return true;
  }

  /** A successful session (welcome received) resets the backoff. */
  markHealthy(): void {
    this.attempt = 0;
    this.lastRefusal = undefined;
  }

  /** The stream moved on (a change or a snapshot applied): a bad frame before it is forgiven. */
  markProgress(): void {
    this.badFrameStreak = 0;
  }

  /** Drop this socket and reconnect (after a protocol problem the agent cannot repair itself). */
  restart(reason: string): void {
    this.opts.log.warn({ reason }, 'restarting connection');
    this.ws?.terminate();
  }

  private open(): void {
    if (this.stateValue === 'closed') return;
    this.setState('connecting');
    const base = this.serverUrl;
    const url = new URL('/v1/ws', base);
    url.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
    const headers: Record<string, string> = {};
    const token = this.opts.token();
    if (token) headers.authorization = `Bearer ${token}`;
    const ws = new WebSocket(url, { ...(base.protocol === 'https:' ? this.opts.tls?.() : {}), headers, maxPayload: this.opts.maxPayloadBytes ?? 1024 * 1024 * 1024, handshakeTimeout: this.opts.serverTimeoutMs });
    this.ws = ws;

    ws.on('open', () => {
      this.opts.log.info({ server: base.origin }, 'connected');
      this.touch(ws);
      this.setState('open');
      ws.send(JSON.stringify(this.handlers.hello()));
    });
    ws.on('message', (data, isBinary) => {
      this.touch(ws);
      if (isBinary) return;
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as Buffer).toString('utf8');
      const m = parseServerMessage(text);
      if (!m.ok) {
        this.badFrameStreak++;
        this.opts.log.error({ err: m.error, server: base.origin, streak: this.badFrameStreak },
          'server sent a frame this agent cannot parse: it stays at the version before it and retries with backoff; report the version named here');
        this.handlers.invalidFrame?.(m.error);
        ws.terminate();
        return;
      }
      if (m.value.type === 'changes' || m.value.type === 'snapshot') this.markProgress();
      this.handlers.message(m.value);
    });
    ws.on('ping', () => this.touch(ws));
    ws.on('unexpected-response', (_req, res) => {
      // The upgrade was refused with an HTTP answer: read its JSON error for the log.
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => {
        this.opts.log.error({ server: base.origin, status: res.statusCode, body: body.slice(0, 300) }, 'server refused the websocket');
        ws.terminate();
      });
    });
    ws.on('error', (e) => {
      const tlsProblem = describeTlsError(e as Error & { code?: string });
      if (tlsProblem) this.opts.log.error({ server: base.origin, code: (e as { code?: string }).code }, tlsProblem);
      else this.opts.log.debug({ server: base.origin, err: e.message }, 'socket error');
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (this.silenceTimer) clearTimeout(this.silenceTimer);
      if (this.stateValue === 'closed') return;
      this.setState('retrying');
      // A JWT that ran out: the next connect reads the token again (AGENT_TOKEN_FILE) and resumes from what was applied.
      const expired = reason.toString().startsWith('token expired');
      const fatal = !expired && !isRetryableClose(code);
      const replaced = code === ErrorCodes.agent_replaced.close;
      // A refusal is said once, not at every slow retry; a new one (or a session in between) is said again.
      const refusal = fatal ? `${code} ${reason.toString()}` : undefined;
      const repeated = refusal !== undefined && refusal === this.lastRefusal;
      this.lastRefusal = refusal;
      if (expired) this.opts.log.info({ code, reason: reason.toString() }, 'token expired; reconnecting with the current token');
      else if (repeated) this.opts.log.debug({ code }, 'still refused; retrying slowly');
      else if (code === ErrorCodes.not_found.close) {
        // An operator may create the env after the agent started: wait for it rather than stop.
        this.opts.log.warn({ code, reason: reason.toString() }, 'the server has no such env yet; waiting for it to be created (retrying slowly)');
      } else if (fatal) this.opts.log.error({ code, reason: reason.toString() }, 'server rejected this agent; fix the configuration (retrying slowly)');
      else if (replaced) {
        // Two PDPs with one AGENT_ID take each other's session over in turn; back off so the live one keeps it.
        this.opts.log.error({ code, agentId: this.opts.agentId, reason: reason.toString() },
          `another agent connected with the same AGENT_ID "${this.opts.agentId ?? ''}" and replaced this session: give every agent its own AGENT_ID (retrying slowly)`);
      } else this.opts.log.info({ code, reason: reason.toString() }, 'disconnected');
      this.scheduleReconnect(fatal || replaced);
    });
  }

  private touch(ws: WebSocket): void {
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      this.opts.log.warn({ ms: this.opts.serverTimeoutMs }, 'server silent for too long; reconnecting');
      ws.terminate();
    }, this.opts.serverTimeoutMs);
    this.silenceTimer.unref();
  }

  private scheduleReconnect(slow: boolean): void {
    this.urlIndex = (this.urlIndex + 1) % this.opts.urls.length;
    const delay = slow
      ? this.opts.reconnectMaxMs
      : backoffDelayMs(Math.max(this.attempt++, this.badFrameStreak), { initialMs: this.opts.reconnectMinMs, maxMs: this.opts.reconnectMaxMs });
    this.reconnects++;
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  close(): Promise<void> {
    this.setState('closed');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1000);
      ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      ws.close(1000, 'agent shutting down');
    });
  }
}
