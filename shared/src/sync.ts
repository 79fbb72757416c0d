import { positionProblem, sourceNameProblem, type SourcePosition } from './source-position.js';
import { Type, type Static } from '@sinclair/typebox';
import { AGENT_ID_PATTERN } from './messages.js';
import { err, ok, type Result } from './result.js';

/** The sync contract (docs/api.md, "Waiting"). */

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

/** The header form of a WaitFor; `parseWaitFor(formatWaitFor(w))` gives `w` back. */
export function formatWaitFor(w: WaitFor): string {
  switch (w.kind) {
    case 'local': return 'local';
    case 'all': return 'all';
    case 'count': return String(w.n);
    case 'ids': return w.ids.join(',');
  }
}

/** Seconds → a wait: 0 = answer now, >0 = up to that long, <0 = until done (null). */
export type WaitTimeout = { ms: number | null };

export const MAX_WAIT_SECONDS = 3600;

export function parseWaitTimeout(raw: string | undefined, fallbackSeconds: number): Result<WaitTimeout> {
  if (raw === undefined) return ok(toTimeout(fallbackSeconds));
  // An empty value waits until synced: the Permit SDK sends "" for waitForSync(null), and its PDP reads it so.
  if (raw.trim() === '') return ok({ ms: null });
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

/** What the headers of a write ask for: whose acks to wait for, how long, and what a timeout means. */
export interface WriteHeaders {
  waitFor: WaitFor;
  /** null = until synced. */
  timeoutMs: number | null;
  policy: TimeoutPolicy;
  idempotencyKey: string | undefined;
  /** X-Producer-Id and X-Producer-Seq: idempotency kept per producer, not per write (see PRODUCER_WINDOW). */
  producer: ProducerSeq | undefined;
  /** The request sent X-Wait-For or X-Wait-Timeout. */
  wantsWait: boolean;
  /** X-Source and X-Source-Position: a source's write, applied once per position. */
  source: SourcePosition | undefined;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;
const PRODUCER_ID = /^[A-Za-z0-9_.:@-]{1,160}$/;

/** A write's place in the sequence of its producer (an agent process forwarding writes). */
export interface ProducerSeq {
  id: string;
  seq: number;
}

/**
 * How many of a producer's latest sequence numbers the server remembers: a
 * retry of one of them is answered with its first version; an older one is
 * refused (409 producer_seq_too_old), so a producer keeps its writes in flight
 * within this window. Idempotency state is then bounded by producers, not by
 * writes (invariant 10).
 */
export const PRODUCER_WINDOW = 128;

/**
 * `Idempotency-Key`, `X-Wait-For`, `X-Wait-Timeout` and `X-Timeout-Policy` of a
 * write, parsed the same way by the server and the agent (docs/api.md, "Waiting").
 */
export function parseWriteHeaders(
  h: Record<string, string | string[] | undefined>,
  defaults: { waitFor: WaitFor; waitSeconds: number },
): Result<WriteHeaders> {
  const one = (name: string) => {
    const v = h[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const idempotencyKey = one('idempotency-key');
  if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
    return err('Idempotency-Key must be 1-200 printable ASCII characters without spaces (a UUID works well)');
  }
  const producerId = one('x-producer-id');
  const producerSeq = one('x-producer-seq');
  let producer: ProducerSeq | undefined;
  if (producerId !== undefined || producerSeq !== undefined) {
    if (producerId === undefined || producerSeq === undefined) return err('send X-Producer-Id and X-Producer-Seq together, or neither');
    if (!PRODUCER_ID.test(producerId)) return err('X-Producer-Id must be 1-160 of A-Z a-z 0-9 _ . : @ - (one per producer process, e.g. agent id and a boot nonce)');
    if (!/^[1-9]\d{0,14}$/.test(producerSeq)) return err(`X-Producer-Seq ${JSON.stringify(producerSeq)} is not valid: use the producer's next integer, starting at 1`);
    if (idempotencyKey !== undefined) return err('send either Idempotency-Key or X-Producer-Id/X-Producer-Seq, not both');
    producer = { id: producerId, seq: Number(producerSeq) };
  }
  const sourceName = one('x-source');
  const sourcePosition = one('x-source-position');
  let source: SourcePosition | undefined;
  if (sourceName !== undefined || sourcePosition !== undefined) {
    if (sourceName === undefined || sourcePosition === undefined) return err('send X-Source and X-Source-Position together, or neither');
    const problem = sourceNameProblem(sourceName) ?? positionProblem(sourcePosition);
    if (problem) return err(problem.startsWith('source name') ? `X-Source: ${problem}` : problem);
    if (idempotencyKey !== undefined || producer) return err('a source write is made idempotent by its X-Source-Position; send no Idempotency-Key or X-Producer-Id with it');
    source = { name: sourceName, position: sourcePosition };
  }
  const waitFor = parseWaitFor(one('x-wait-for'), defaults.waitFor);
  if (!waitFor.ok) return err(`X-Wait-For: ${waitFor.error}`);
  const timeout = parseWaitTimeout(one('x-wait-timeout'), defaults.waitSeconds);
  if (!timeout.ok) return err(`X-Wait-Timeout: ${timeout.error}`);
  const policy = parseTimeoutPolicy(one('x-timeout-policy'));
  if (!policy.ok) return policy;
  return ok({
    waitFor: waitFor.value, timeoutMs: timeout.value.ms, policy: policy.value, idempotencyKey, producer, source,
    wantsWait: one('x-wait-for') !== undefined || one('x-wait-timeout') !== undefined,
  });
}
