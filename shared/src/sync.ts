import { Type, type Static } from '@sinclair/typebox';
import { AGENT_ID_PATTERN } from './messages.js';
import { err, ok, type Result } from './result.js';

/** The sync contract (DESIGN.md, "Waiting"). */

export type WaitFor =
  | { kind: 'local' }
  | { kind: 'all' }
  | { kind: 'count'; n: number }
  | { kind: 'ids'; ids: string[] };

export const SyncStatus = Type.Object({
  version: Type.Integer({ minimum: 0 }),
  synced: Type.Boolean(),
  acked: Type.Array(Type.String()),
  pending: Type.Array(Type.String()),
});
export type SyncStatus = Static<typeof SyncStatus>;

const agentIdRe = new RegExp(AGENT_ID_PATTERN);
const WAIT_FOR_FORMS = '"local", "all", a positive integer n, or a comma list of agent ids';

export function parseWaitFor(raw: string | undefined, fallback: WaitFor): Result<WaitFor> {
  if (raw === undefined) return ok(fallback);
  const s = raw.trim();
  if (s === 'local') return ok({ kind: 'local' });
  if (s === 'all') return ok({ kind: 'all' });
  if (/^[-+]?\d+(\.\d*)?$/.test(s)) {
    // Numbers are counts, never agent ids: "-1" is far more likely a timeout in the wrong header.
    const n = Number(s);
    if (n >= 1 && Number.isSafeInteger(n)) return ok({ kind: 'count', n });
    return err(`wait_for ${JSON.stringify(raw)}: n must be an integer of at least 1; accepted forms: ${WAIT_FOR_FORMS}`);
  }
  const ids = s.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
  if (ids.length > 0 && ids.length <= 1000 && ids.every((id) => agentIdRe.test(id))) return ok({ kind: 'ids', ids: [...new Set(ids)] });
  return err(`wait_for ${JSON.stringify(raw)} is not valid; accepted forms: ${WAIT_FOR_FORMS}`);
}

/** Seconds → a wait: 0 = answer now, >0 = up to that long, <0 = until done (null). */
export type WaitTimeout = { ms: number | null };

export const MAX_WAIT_SECONDS = 3600;

export function parseWaitTimeout(raw: string | undefined, fallbackSeconds: number): Result<WaitTimeout> {
  if (raw === undefined || raw.trim() === '') return ok(toTimeout(fallbackSeconds));
  const s = raw.trim();
  if (!/^-?\d+(\.\d+)?$/.test(s)) {
    return err(`timeout ${JSON.stringify(raw)} is not a number of seconds: use 0 (answer now), a positive number (wait up to), or a negative number (wait until synced)`);
  }
  const seconds = Number(s);
  if (seconds > MAX_WAIT_SECONDS) return err(`timeout ${s}s is longer than the ${MAX_WAIT_SECONDS}s maximum; use a negative number to wait until synced`);
  return ok(toTimeout(seconds));
}

const toTimeout = (seconds: number): WaitTimeout => ({ ms: seconds < 0 ? null : Math.round(seconds * 1000) });

export type TimeoutPolicy = 'ignore' | 'fail';
export function parseTimeoutPolicy(raw: string | undefined): Result<TimeoutPolicy> {
  if (raw === undefined) return ok('ignore');
  const s = raw.trim().toLowerCase();
  if (s === 'ignore' || s === 'fail') return ok(s);
  return err(`X-Timeout-Policy ${JSON.stringify(raw)} is not valid: use "ignore" (default) or "fail"`);
}
