/**
 * Where a source (a system of record: a Postgres database, an HTTP endpoint)
 * is in its own history. A source's write carries `X-Source: NAME` and
 * `X-Source-Position: P`; the server records P in the same atomic step as the
 * write, and a write whose P is not after the recorded one applies nothing.
 * Positions compare as byte strings, so each source encodes its order that way
 * (Postgres: the commit LSN as 16 hex digits, a dot, the part as 4 digits).
 */
export const SOURCE_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';
const SOURCE_NAME = new RegExp(SOURCE_NAME_PATTERN);
/** Printable ASCII without spaces: every position compares bytewise, and the stores keep it in a line. */
const POSITION = /^[\x21-\x7e]{1,128}$/;

export interface SourcePosition {
  name: string;
  position: string;
}

export const sourceNameProblem = (name: string): string | undefined =>
  SOURCE_NAME.test(name) ? undefined : `source name ${JSON.stringify(name.slice(0, 80))} is not valid: use 1-64 of A-Z a-z 0-9 _ . -`;

export const positionProblem = (p: string): string | undefined =>
  POSITION.test(p) ? undefined : `X-Source-Position ${JSON.stringify(p.slice(0, 80))} is not valid: use 1-128 printable ASCII characters without spaces, ordered as byte strings`;

/** Byte order of two positions (ASCII: code-unit order is byte order). */
export const positionAfter = (p: string, recorded: string): boolean => p > recorded;

/** Postgres: a commit LSN ("16/B374D848") and the part of its transaction, as a position that sorts bytewise. */
export function lsnPosition(lsn: string, part = 0): string {
  const [hi, lo] = lsn.split('/');
  if (hi === undefined || lo === undefined || !/^[0-9A-Fa-f]{1,8}$/.test(hi) || !/^[0-9A-Fa-f]{1,8}$/.test(lo)) throw new Error(`not an LSN: ${lsn}`);
  return `${hi.toUpperCase().padStart(8, '0')}${lo.toUpperCase().padStart(8, '0')}.${String(part).padStart(4, '0')}`;
}

/** The LSN of a Postgres position ("0000001600B374D8.0002" → "16/B374D8"). */
export function positionLsn(p: string): string {
  const m = /^([0-9A-F]{8})([0-9A-F]{8})\.\d{4}$/.exec(p);
  if (!m) throw new Error(`not a Postgres source position: ${p}`);
  return `${m[1]!.replace(/^0+(?=.)/, '')}/${m[2]!.replace(/^0+(?=.)/, '')}`;
}
