import { err, ok, type Result } from '@factsync/shared';
import { isValidControlEvent, type ControlEvent, type EnvEvent } from './fact-store.js';

/**
 * Wire form of cross-replica events. A change doorbell is `c:<version>:<epoch>`
 * or `c:<version>:<epoch>:<change JSON>`, so the change text is forwarded to
 * agents without being parsed, and a doorbell from another epoch (the store
 * lost data) is never mistaken for the next version. Epochs are nanoids, which
 * never contain ':'. Control events (joins, ack summaries) are small JSON
 * objects on a channel of their own.
 */
export function parseEnvEvent(message: string): Result<EnvEvent> {
  const group = message.startsWith('m:');
  if (!group && !message.startsWith('c:')) return err('doorbell does not start with "c:" or "m:"');
  const second = message.indexOf(':', 2);
  const third = second < 0 ? -1 : message.indexOf(':', second + 1);
  const v = Number(message.slice(2, second < 0 ? undefined : second));
  const e = second < 0 ? '' : message.slice(second + 1, third < 0 ? undefined : third);
  if (!Number.isSafeInteger(v) || v < 1 || e === '') return err(`bad change doorbell ${message.slice(0, 40)}`);
  if (third < 0) return ok({ t: 'change', v, e });
  // A group's changes are JSON texts, which never hold a raw newline: one per line.
  return ok(group ? { t: 'change', v, e, cs: message.slice(third + 1).split('\n') } : { t: 'change', v, e, c: message.slice(third + 1) });
}

export function parseControlEvent(message: string): Result<ControlEvent> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return err('control event is not JSON');
  }
  return isValidControlEvent(parsed) ? ok(parsed) : err('control event has an unknown shape');
}

export const encodeChangeEvent = (v: number, epoch: string, change: string | undefined): string =>
  change === undefined ? `c:${v}:${epoch}` : `c:${v}:${epoch}:${change}`;

/** The doorbell of a group of changes (ending at version v), inline. */
export const encodeGroupEvent = (v: number, epoch: string, changes: readonly string[]): string => `m:${v}:${epoch}:${changes.join('\n')}`;

export const encodeControlEvent = (e: ControlEvent): string => JSON.stringify(e);
