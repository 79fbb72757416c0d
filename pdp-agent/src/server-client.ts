import { FactsyncError, isErrorCode } from '@factsync/shared';

export interface HttpAnswer<T> {
  status: number;
  body: T;
  headers: Headers;
}

/**
 * HTTP calls from the agent to the server: gap repair today, forwarded writes
 * later. Failover across `SERVER_URL`s on connection errors is the caller's
 * choice (`preferred` first, then the rest in order).
 */
export class ServerClient {
  constructor(private readonly urls: readonly URL[], private readonly token: () => string | undefined, private readonly timeoutMs = 30_000, private readonly fetch: (url: URL, init: RequestInit) => Promise<Response> = globalThis.fetch) {}

  async request<T>(method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; preferred?: URL; timeoutMs?: number } = {}): Promise<HttpAnswer<T>> {
    const order = opts.preferred ? [opts.preferred, ...this.urls.filter((u) => u.href !== opts.preferred!.href)] : [...this.urls];
    let lastError: Error | undefined;
    const token = this.token();
    for (const base of order) {
      let res: Response;
      try {
        res = await this.fetch(new URL(path, base), {
          method,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...opts.headers,
          },
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
          signal: AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs),
        });
      } catch (e) {
        // Connection refused/reset or timeout: this replica is away, try the next one.
        lastError = e as Error;
        continue;
      }
      const text = await res.text();
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = { error: 'internal', message: text.slice(0, 200) };
      }
      return { status: res.status, body: body as T, headers: res.headers };
    }
    throw new FactsyncError('upstream_unavailable', `no factsync server answered (${order.map((u) => u.origin).join(', ')}): ${lastError?.message ?? 'unknown error'}`);
  }

  /** Like request, but a non-2xx answer becomes a FactsyncError carrying the server's code. */
  async call<T>(method: string, path: string, opts: Parameters<ServerClient['request']>[2] = {}): Promise<HttpAnswer<T>> {
    const a = await this.request<T>(method, path, opts);
    if (a.status >= 200 && a.status < 300) return a;
    throw errorOf(a);
  }
}

/** A server's error answer as a FactsyncError with the server's code (or one derived from the status). */
export function errorOf(a: HttpAnswer<unknown>): FactsyncError {
  const b = a.body as { error?: unknown; message?: unknown } | undefined;
  const code = isErrorCode(b?.error) ? b.error : a.status >= 500 ? 'upstream_unavailable' : 'invalid_request';
  return new FactsyncError(code, typeof b?.message === 'string' ? b.message : `server answered ${a.status}`, b as Record<string, unknown>);
}
