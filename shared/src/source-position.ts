/**
 * Where a source (a system of record: a Postgres database, an HTTP endpoint)
 * is in its own history. A source's write carries `X-Source: NAME` and
 * `X-Source-Position: P`; the server records P in the same atomic step as the
 * write, and a write whose P is not after the recorded one applies nothing.
 * Positions compare as byte strings, so each source encodes its order that way
 * (the Postgres source's format is in source/src/pg-position.ts).
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
