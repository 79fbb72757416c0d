import { isErrorCode, type ErrorCode } from '@factsync/shared';

/** Every failed call: the server's or agent's error code, the HTTP status and the message it sent. */
export class FactsyncClientError extends Error {
  override name = 'FactsyncClientError';
  constructor(
    readonly code: ErrorCode | 'network_error' | 'history_rewritten',
    readonly status: number,
    message: string,
    readonly body: Record<string, unknown> = {},
  ) {
    super(message);
  }

  /** For `sync_timeout`: the write exists with this version but is not yet visible where asked. */
  get version(): number | undefined {
    return typeof this.body.version === 'number' ? this.body.version : undefined;
  }

  static fromBody(status: number, body: unknown): FactsyncClientError {
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const code = isErrorCode(b.error) ? b.error : status >= 500 ? 'internal' : 'invalid_request';
    return new FactsyncClientError(code, status, typeof b.message === 'string' ? b.message : `HTTP ${status}`, b);
  }
}
