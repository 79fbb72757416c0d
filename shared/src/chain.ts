import * as crypto from 'node:crypto';

/**
 * Invariant 9, history is chained: the `id` of version V is
 * sha1(id(V-1) "\n" V "\n" ts "\n" opsJson), with id(0) = "". The server's write
 * script computes it with `redis.sha1hex` over the exact text it stores, the
 * agent recomputes it over `JSON.stringify(change.ops)` (the same text: the
 * server serialised parsed JSON, and parse/stringify round-trips it). A store
 * that lost or rewrote versions while keeping its epoch shows up as an id that
 * does not follow the one before.
 */
export const GENESIS_ID = '';

// The one-shot crypto.hash (Node >= 20.12) costs half of createHash().update().digest() for inputs
// this small; every agent runs it once per change it applies.
export const sha1Hex: (s: string) => string = typeof (crypto as { hash?: unknown }).hash === 'function'
  ? (s) => (crypto as unknown as { hash(alg: string, data: string): string }).hash('sha1', s)
  : (s) => crypto.createHash('sha1').update(s).digest('hex');

export function chainId(prevId: string, version: number, ts: string, opsJson: string): string {
  return sha1Hex(`${prevId}\n${version}\n${ts}\n${opsJson}`);
}

/** Whether `change` follows the change whose id is `prevId`. */
export function followsChain(prevId: string, change: { version: number; id: string; ts: string; ops: unknown }): boolean {
  return chainId(prevId, change.version, change.ts, JSON.stringify(change.ops)) === change.id;
}

const ID_MARK = '"id":"';

/**
 * The id of a stored change text `{"version":V,"id":"…","ts":…}` without parsing
 * it (the server forwards change texts it never parses); null when absent.
 */
export function idOfChangeJson(json: string): string | null {
  const i = json.indexOf(ID_MARK);
  if (i < 0 || i > 40) return null;
  const start = i + ID_MARK.length;
  const end = json.indexOf('"', start);
  // A slice of a string keeps the whole string alive in V8 (a sliced string points into it), and
  // ids outlive their change texts (catch-up acks, the feeds): copy the 40 characters out, or a
  // catch-up through 2 MB changes keeps every one of them.
  return end < 0 ? null : (' ' + json.slice(start, end)).slice(1);
}

/** The id of version V of a stored change text, checked against its predecessor's id (server-side chain check). */
export function rawFollowsChain(prevId: string, version: number, json: string): boolean {
  const id = idOfChangeJson(json);
  const tsAt = json.indexOf('"ts":"');
  const opsAt = json.indexOf(',"ops":', tsAt);
  if (id === null || tsAt < 0 || opsAt < 0) return false;
  const ts = json.slice(tsAt + 6, json.indexOf('"', tsAt + 6));
  const opsJson = json.slice(opsAt + 7, json.length - 1);
  return chainId(prevId, version, ts, opsJson) === id;
}
