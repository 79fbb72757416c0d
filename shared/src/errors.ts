/**
 * The one registry of error codes. The `error` field of every JSON error body and
 * every websocket `error` frame is one of these; the HTTP status and the websocket
 * close code travel with it so both sides decide from the code alone.
 */
export const ErrorCodes = {
  invalid_request: { status: 400, close: 4400 },
  unauthorized: { status: 401, close: 4401 },
  /** A websocket whose JWT expired: reconnect with a fresh token (the session resumes; nothing is lost). */
  token_expired: { status: 401, close: 4401 },
  forbidden: { status: 403, close: 4403 },
  not_found: { status: 404, close: 4404 },
  method_not_allowed: { status: 405, close: 4405 },
  log_truncated: { status: 410, close: 4410 },
  agent_replaced: { status: 409, close: 4409 },
  producer_seq_too_old: { status: 409, close: 4411 },
  payload_too_large: { status: 413, close: 1009 },
  uri_too_long: { status: 414, close: 4414 },
  unsupported_media_type: { status: 415, close: 4415 },
  /** A scoped agent asked about a tenant it does not hold (invariant 11): ask an agent that serves it. */
  tenant_not_served: { status: 421, close: 4421 },
  idempotency_key_reused: { status: 422, close: 4422 },
  sync_timeout: { status: 424, close: 4424 },
  too_many_connections: { status: 429, close: 4429 },
  not_synced: { status: 504, close: 4504 },
  store_unavailable: { status: 503, close: 1013 },
  upstream_unavailable: { status: 502, close: 1013 },
  internal: { status: 500, close: 1011 },
  shutting_down: { status: 503, close: 1001 },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(ErrorCodes, x);
}

/** A typed error: a stable code, an HTTP status and a sentence for humans. */
export class FactsyncError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'FactsyncError';
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.details = details;
  }

  toJSON(): { error: ErrorCode; message: string } & Record<string, unknown> {
    return { ...(this.details ?? {}), error: this.code, message: this.message };
  }
}

/**
 * Websocket close codes and whether a client should reconnect after them.
 * 4xxx codes in the 4400 range mean "your request is wrong": retrying the same
 * hello will fail the same way, so the client stops and says why.
 */
export function isRetryableClose(code: number): boolean {
  return !(code === 4400 || code === 4401 || code === 4403 || code === 4404);
}

/** A close reason is at most 123 bytes of UTF-8 (RFC 6455); a longer one makes `ws` throw, and the socket would be cut without its code. */
export function closeReason(message: string): string {
  let r = message.slice(0, 123);
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}
