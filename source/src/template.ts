/**
 * Templates from a row's columns to a fact's key and value: `"{user_email}/{role}"`
 * is text with columns in braces. A template that is exactly one column
 * (`"{age}"`) keeps the column's JSON type (number, boolean, null, array,
 * object); anything else is a string. Values may nest objects and arrays of
 * templates; other JSON (numbers, booleans) is taken as it is.
 */
export type Row = Record<string, unknown>;

/** A column that was not sent (an unchanged TOASTed value): the stored fact's value is kept where it is used. */
export const UNCHANGED = Symbol('unchanged');

export interface Template {
  /** Columns it reads, in order of appearance. */
  columns: string[];
  render(row: Row): unknown;
}

const PART = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Text of a value: what a column becomes inside a longer template. */
function text(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** A column's value as JSON (Dates as ISO text, bigints as numbers when safe, Buffers as hex). */
export function jsonOf(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
  return v === undefined ? null : v;
}

export function compileString(t: string): Template {
  const columns = [...t.matchAll(PART)].map((m) => m[1]!);
  const single = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(t);
  if (single) {
    const col = single[1]!;
    return { columns, render: (row) => (row[col] === UNCHANGED ? UNCHANGED : jsonOf(row[col])) };
  }
  return {
    columns,
    render: (row) => {
      if (columns.some((c) => row[c] === UNCHANGED)) return UNCHANGED;
      return t.replace(PART, (_, c: string) => text(row[c]));
    },
  };
}

/** A value template: the same shape with every string compiled. */
export function compileValue(v: unknown): Template {
  if (typeof v === 'string') return compileString(v);
  if (Array.isArray(v)) {
    const items = v.map(compileValue);
    return { columns: items.flatMap((i) => i.columns), render: (row) => items.map((i) => i.render(row)) };
  }
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).map(([k, x]) => [k, compileValue(x)] as const);
    return { columns: entries.flatMap(([, t]) => t.columns), render: (row) => Object.fromEntries(entries.map(([k, t]) => [k, t.render(row)])) };
  }
  return { columns: [], render: () => v };
}

/**
 * A key template as a pattern: the keys it can produce (what a table mapping
 * owns). Literal text must match; each column matches any text.
 */
export function keyPattern(t: string): RegExp {
  let re = '';
  let last = 0;
  for (const m of t.matchAll(PART)) {
    re += t.slice(last, m.index).replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '[\\s\\S]*?';
    last = m.index! + m[0].length;
  }
  re += t.slice(last).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${re}$`);
}

/** Replaces UNCHANGED leaves with what `stored` has at the same path (the fact as the server holds it). */
export function keepUnchanged(value: unknown, stored: unknown): unknown {
  if (value === UNCHANGED) return stored;
  if (Array.isArray(value)) return value.map((v, i) => keepUnchanged(v, Array.isArray(stored) ? stored[i] : undefined));
  if (value !== null && typeof value === 'object') {
    const s = stored !== null && typeof stored === 'object' ? (stored as Record<string, unknown>) : {};
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, keepUnchanged(v, s[k])]));
  }
  return value;
}

export const hasUnchanged = (value: unknown): boolean =>
  value === UNCHANGED || (Array.isArray(value) ? value.some(hasUnchanged) : value !== null && typeof value === 'object' && Object.values(value).some(hasUnchanged));
