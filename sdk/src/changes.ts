import WebSocket from 'ws';
import { backoffDelayMs, followsHistory, isErrorCode, isRetryableClose, parseServerMessage, type Change } from '@factsync/shared';
import { FactsyncClientError } from './errors.js';
import type { ChangesReply, HeadReply } from '@factsync/shared';

/** What following needs of a server client: its head, its log, and where its websocket is. */
export interface ChangeSource {
  readonly env: string;
  readonly socket: { url: string; token: string | undefined; env: string };
  head(): Promise<HeadReply>;
  changesPage(after: number, limit?: number, types?: readonly string[], tenants?: readonly string[]): Promise<ChangesReply>;
}

/** A change as `tail` prints it and the iterator yields it. */
export type FollowedChange = Change;

export interface ChangesOptions {
  /** Yield versions after this one (default: the head when following starts, i.e. only new changes). */
  after?: number;
  /** Stop once the head seen at the start is reached, instead of following forever. */
  untilHead?: boolean;
  signal?: AbortSignal;
  /**
   * Only ops of these fact types (e.g. `['user']`), filtered by the server. Every
   * version still comes (some with no ops), each linked to the one before by
   * `prev`, which is checked instead of the chain id.
   */
  types?: readonly string[];
  /** Only the share of these tenants: their facts and the facts of no tenant (a scoped agent's share), linked the same way. */
  tenants?: readonly string[];
  /** Told when following goes live, loses its socket, or reconnects (for logs and tests). */
  onState?: (state: 'live' | 'disconnected', detail: string) => void;
}

/** Frames buffered ahead of a slow consumer before the socket is paused (TCP then pushes back on the server). */
const HIGH_WATER = 64;
const BACKOFF = { initialMs: 100, maxMs: 5_000 };

/**
 * The env's changes from `after` + 1, each exactly once, in order, with the
 * chain (invariant 9) checked from one to the next. Catch-up reads the log
 * over HTTP up to the head; then a subscriber websocket (`ack: false`)
 * resumes from the last version yielded. A dropped socket or a restarted
 * server is a reconnect with backoff from where it stopped; a gap in what
 * the socket sends is repaired from the log. A history that cannot continue
 * (the log was trimmed past the last version yielded, the store lost data)
 * throws: following it would silently skip or repeat changes.
 */
export async function* followChanges(server: ChangeSource, o: ChangesOptions): AsyncGenerator<FollowedChange> {
  const first = await server.head();
  let at = o.after ?? first.version;
  const stopAt = o.untilHead ? Math.max(at, first.version) : Number.POSITIVE_INFINITY;
  let epoch: string | null = first.epoch;
  let id: string | null = null;
  if (at > first.version && first.epoch !== null) {
    throw new FactsyncClientError('invalid_request', 400, `--after ${at} is past the head (${first.version}) of env "${server.env}"`);
  }
  let failures = 0;

  /** Yields from `changes`, checking order and chain; false when a change does not follow (a gap to repair). */
  const accept = (c: Change, pageEpoch: string | null): 'ok' | 'skip' | 'gap' => {
    if (epoch !== null && pageEpoch !== null && pageEpoch !== epoch) {
      throw new FactsyncClientError('history_rewritten', 409, `the store of env "${server.env}" lost its data (epoch ${epoch} became ${pageEpoch}); versions after ${at} are not the ones that were followed`);
    }
    if (pageEpoch !== null) epoch = pageEpoch;
    if (c.version <= at) return 'skip';
    // A share's run of versions with nothing in it comes as one change from `from` to `version`.
    if ((c.from ?? c.version) !== at + 1) return 'gap';
    if (id !== null && !followsHistory(id, c)) {
      throw new FactsyncClientError('history_rewritten', 409, `version ${c.version} of env "${server.env}" does not follow version ${at} that was yielded: the store's history was rewritten (a failover to a lagging replica?)`);
    }
    return 'ok';
  };

  while (!o.signal?.aborted && at < stopAt) {
    try {
      // Catch up from the log over HTTP.
      for (;;) {
        // Resuming from a bare version: read the change at it too, for its id. A hello names the id of
        // what it applied or it proves nothing, and the server answers it as a first start.
        const read = (after: number) => server.changesPage(after, 1000, o.types, o.tenants);
        // A log that no longer holds `at` itself: ask from `at`, whose answer says whether it still continues.
        const before = at;
        const page: ChangesReply = id === null && at > 0
          ? await read(at - 1).catch((e: unknown) => (e instanceof FactsyncClientError && e.code === 'log_truncated' ? read(at) : Promise.reject(e)))
          : await read(at);
        for (const c of page.changes) {
          if (id === null && c.version === at) {
            id = c.id;
            continue;
          }
          const verdict = accept(c, page.epoch);
          if (verdict === 'skip') continue;
          if (verdict === 'gap') throw new FactsyncClientError('internal', 0, `the log skipped from ${at} to ${c.version}`);
          at = c.version;
          id = c.id;
          yield c;
          if (at >= stopAt || o.signal?.aborted) return;
        }
        if (page.changes.every((c) => c.version <= before)) break;
      }
      // An abort that came during the last page must end here: a listener added to an aborted signal never fires.
      if (at >= stopAt || o.signal?.aborted) return;

      // Live, as a subscriber that resumes from `at`.
      const sock = openSubscriber(server, { applied: at, epoch, appliedId: id, types: o.types, tenants: o.tenants, signal: o.signal });
      try {
        for await (const frame of sock.frames) {
          if (frame.type === 'welcome') {
            failures = 0;
            // A snapshot means the server cannot continue our history from the log: read it over HTTP,
            // which says why (410 trimmed, another epoch, a chain that breaks) or simply continues.
            if (frame.snapshot) break;
            o.onState?.('live', `following env "${server.env}" from version ${at}`);
            continue;
          }
          if (frame.type === 'snapshot') break;
          if (frame.type === 'error') throw new FactsyncClientError(isErrorCode(frame.error) ? frame.error : 'internal', 0, frame.message);
          if (frame.type !== 'changes') continue;
          let gap = false;
          for (const c of frame.changes) {
            const verdict = accept(c, epoch);
            if (verdict === 'skip') continue;
            if (verdict === 'gap') {
              gap = true;
              break;
            }
            at = c.version;
            id = c.id;
            yield c;
            if (at >= stopAt || o.signal?.aborted) return;
          }
          if (gap) break;
        }
      } finally {
        sock.close();
      }
      if (sock.closedWith && !isRetryableClose(sock.closedWith.code)) {
        throw new FactsyncClientError(sock.closedWith.code === 4401 ? 'unauthorized' : 'forbidden', 0, `the server closed the socket: ${sock.closedWith.reason || sock.closedWith.code}`);
      }
      if (sock.closedWith) o.onState?.('disconnected', `socket closed (${sock.closedWith.code}${sock.closedWith.reason ? ` ${sock.closedWith.reason}` : ''}); resuming after version ${at}`);
    } catch (e) {
      if (!(e instanceof FactsyncClientError) || !isTransient(e)) throw e;
      o.onState?.('disconnected', `${e.message}; resuming after version ${at}`);
    }
    if (o.signal?.aborted) return;
    await sleep(backoffDelayMs(failures++, BACKOFF), o.signal);
  }
}

function isTransient(e: FactsyncClientError): boolean {
  return e.code === 'network_error' || e.code === 'store_unavailable' || e.code === 'shutting_down' || e.code === 'upstream_unavailable' || e.status >= 502;
}

interface Subscriber {
  frames: AsyncIterable<ReturnType<typeof parseOrThrow>>;
  closedWith: { code: number; reason: string } | null;
  close(): void;
}

function parseOrThrow(raw: string) {
  const m = parseServerMessage(raw);
  if (!m.ok) throw new FactsyncClientError('internal', 0, m.error);
  return m.value;
}

/** One subscriber socket as an async iterable of its frames; pauses the socket while the consumer lags. */
function openSubscriber(server: ChangeSource, r: { applied: number; epoch: string | null; appliedId: string | null; types?: readonly string[] | undefined; tenants?: readonly string[] | undefined; signal?: AbortSignal | undefined }): Subscriber {
  const { url, token, env } = server.socket;
  const wsUrl = new URL('/v1/ws', url);
  wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(wsUrl, { headers: token ? { authorization: `Bearer ${token}` } : {}, handshakeTimeout: 10_000 });
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  let ended = false;
  let failure: Error | null = null;
  const state: Subscriber = {
    closedWith: null,
    close: () => {
      ended = true;
      ws.removeAllListeners('message');
      ws.on('error', () => {});
      ws.terminate();
    },
    frames: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          const raw = queue.shift();
          if (raw !== undefined) {
            if (queue.length < HIGH_WATER / 2 && ws.isPaused) ws.resume();
            yield parseOrThrow(raw);
            continue;
          }
          if (failure) throw failure;
          if (ended) return;
          await new Promise<void>((res) => (wake = res));
        }
      },
    },
  };
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onAbort = (): void => {
    ended = true;
    ws.terminate();
    poke();
  };
  if (r.signal?.aborted) onAbort();
  else r.signal?.addEventListener('abort', onAbort, { once: true });
  ws.on('open', () => {
    ws.send(JSON.stringify({ type: 'hello', env, agent_id: `tail-${Math.random().toString(36).slice(2, 12)}`, applied: r.applied, epoch: r.epoch, applied_id: r.appliedId, ack: false, ...(r.types?.length ? { types: r.types } : {}), ...(r.tenants?.length ? { tenants: r.tenants } : {}) }));
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    queue.push(data.toString());
    if (queue.length >= HIGH_WATER) ws.pause();
    poke();
  });
  ws.on('unexpected-response', (_req, res) => {
    let body = '';
    res.on('data', (d: Buffer) => (body += d.toString()));
    res.on('end', () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = { message: body.slice(0, 200) };
      }
      failure = FactsyncClientError.fromBody(res.statusCode ?? 0, parsed);
      ended = true;
      ws.terminate();
      poke();
    });
  });
  ws.on('error', (e) => {
    failure ??= new FactsyncClientError('network_error', 0, `websocket to ${url}: ${(e as { code?: string }).code ?? e.message}`);
    ended = true;
    poke();
  });
  ws.on('close', (code, reason) => {
    state.closedWith = { code, reason: reason.toString() };
    ended = true;
    r.signal?.removeEventListener('abort', onAbort);
    poke();
  });
  return state;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((res) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      res();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
