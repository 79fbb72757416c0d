import { err, ok, type Result } from '@factsync/shared';
import { isValidEvent, type EnvEvent } from './fact-store.js';

/**
 * Wire form of cross-replica events. A change doorbell is `c:<version>` or
 * `c:<version>:<change JSON>`, so the change text is forwarded to agents without
 * being parsed; acks and presence are small JSON objects.
 */
export function parseEnvEvent(message: string): Result<EnvEvent> {
  if (message.startsWith('c:')) {
    const second = message.indexOf(':', 2);
    const v = Number(second < 0 ? message.slice(2) : message.slice(2, second));
    if (!Number.isSafeInteger(v) || v < 1) return err(`bad change doorbell ${message.slice(0, 40)}`);
    return ok(second < 0 ? { t: 'change', v } : { t: 'change', v, c: message.slice(second + 1) });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return err('event is not JSON');
  }
  return isValidEvent(parsed) ? ok(parsed) : err('event has an unknown shape');
}

export const encodeChangeEvent = (v: number, change: string | undefined): string =>
  change === undefined ? `c:${v}` : `c:${v}:${change}`;

export const encodeAckEvent = (acks: ReadonlyMap<string, number>): string =>
  JSON.stringify({ t: 'acks', a: Object.fromEntries(acks) });
