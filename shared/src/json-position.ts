/**
 * Where a JSON text breaks, for error messages a person can act on. Node 20's parser names the
 * position for most errors ("... in JSON at position 23") but not for an unexpected token, which
 * is the commonest mistake (a trailing comma, a missing value). A prefix of a text either breaks
 * only at its end (it could still be completed) or before it, and once a prefix breaks inside,
 * every longer one does too; so the first bad character is found by bisecting on prefixes.
 */

/** Texts longer than this get no bisection (each step parses a prefix; a client must not buy CPU with bad bodies). */
export const JSON_POSITION_SCAN_LIMIT = 64 * 1024;

const AT_POSITION = /in JSON at position (\d+)/;

/** Does this prefix break only at its end (so that some continuation would make it valid)? */
function breaksOnlyAtEnd(prefix: string): boolean {
  try {
    JSON.parse(prefix);
    return true;
  } catch (e) {
    const message = (e as Error).message;
    if (message.startsWith('Unexpected end of JSON input')) return true;
    const at = AT_POSITION.exec(message);
    return at !== null && Number(at[1]) >= prefix.length;
  }
}

/** The offset of the first character that makes `text` invalid, or null when it cannot be told cheaply. */
export function jsonErrorOffset(text: string, message: string): number | null {
  const at = AT_POSITION.exec(message);
  if (at) return Number(at[1]);
  if (text.length > JSON_POSITION_SCAN_LIMIT || breaksOnlyAtEnd(text)) return null;
  let good = 0; // the longest prefix known to break only at its end
  let bad = text.length; // a prefix known to break inside
  while (bad - good > 1) {
    const mid = (good + bad) >>> 1;
    if (breaksOnlyAtEnd(text.slice(0, mid))) good = mid;
    else bad = mid;
  }
  return good;
}

/** "line 3, column 14" (both from 1) of an offset. */
export function lineAndColumn(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${offset - lineStart + 1}`;
}

/** The parser's message with where it broke: position, line and column. */
export function describeJsonError(text: string, message: string): string {
  const offset = jsonErrorOffset(text, message);
  if (offset === null) return message;
  const where = lineAndColumn(text, offset);
  return AT_POSITION.test(message) ? `${message} (${where})` : `${message}, at position ${offset} (${where})`;
}
