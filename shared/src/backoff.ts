export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
}

/**
 * "Full jitter" exponential backoff (AWS architecture blog): the delay is uniform
 * in [0, min(max, initial * factor^attempt)], which spreads a thundering herd of
 * 1,000 agents reconnecting after a replica dies.
 */
export function backoffDelayMs(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const factor = opts.factor ?? 2;
  const cap = Math.min(opts.maxMs, opts.initialMs * Math.pow(factor, Math.max(0, attempt)));
  return Math.floor(Math.max(opts.initialMs / 2, random() * cap));
}
