import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { parse as parseCsv } from 'csv-parse';
import { Fact, WireOp, derivedKey, describeJsonError, hasDerivedKey, parseOps, TYPE_PATTERN, type Op } from '@factsync/shared';
import { UsageError } from './context.js';

/** One record of an input file (CSV, JSON lines; a "source" is always a system of record): the op it becomes, or why it cannot be one. */
export type InputItem =
  | { line: number; bytes: number; op: Op }
  | { line: number; bytes: number; error: string };

export interface CsvOptions {
  type: string;
  /** The column holding the key; optional for types whose key is derived from the value. */
  key?: string;
  /** `column=field` pairs (dotted fields nest: `dept=attributes.dept`); without it every other column is a field. */
  map?: string;
}

const factCheck = TypeCompiler.Compile(Fact);
const opCheck = TypeCompiler.Compile(WireOp);
const typeRe = new RegExp(TYPE_PATTERN);

/** The same sentence the API gives, said of a line instead of an op of a body. */
const validated = (line: number, bytes: number, wire: WireOp): InputItem => {
  const r = parseOps([wire]);
  return r.ok ? { line, bytes, op: r.value[0]! } : { line, bytes, error: r.error.replace(/^ops\[0\]:? ?/, '') };
};

function firstProblem(check: typeof factCheck | typeof opCheck, v: unknown): string {
  const e = check.Errors(v).First();
  if (!e) return 'is not a fact';
  return `${e.path.replace(/^\//, '').replaceAll('/', '.') || 'the line'}: ${e.schema.description ?? e.message.charAt(0).toLowerCase() + e.message.slice(1)}`;
}

/**
 * JSON lines, each a fact `{type, key, value}` (an upsert) or an op
 * `{op, type, key, value?}`; blank lines are skipped. Streamed: one line at
 * a time, whatever the file's size.
 */
export async function* jsonLines(path: string): AsyncGenerator<InputItem> {
  const input = createReadStream(path, { encoding: 'utf8' });
  let line = 0;
  let bytes = 0;
  for await (const text of createInterface({ input, crlfDelay: Infinity })) {
    line++;
    bytes += Buffer.byteLength(text) + 1;
    if (text.trim() === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      yield { line, bytes, error: `not JSON (${describeJsonError(text, (e as Error).message)})` };
      continue;
    }
    if (v !== null && typeof v === 'object' && 'op' in v) {
      if (!opCheck.Check(v)) yield { line, bytes, error: `not an op: ${firstProblem(opCheck, v)}` };
      else yield validated(line, bytes, v);
    } else if (!factCheck.Check(v)) {
      yield { line, bytes, error: `not a fact {"type", "key", "value": {…}} or an op {"op", "type", "key", "value"}: ${firstProblem(factCheck, v)}` };
    } else {
      yield validated(line, bytes, { op: 'upsert', type: v.type, key: v.key, value: v.value });
    }
  }
}

/** `column=field,…` → [column, path] pairs. */
function parseMap(map: string): [string, string[]][] {
  return map.split(',').map((pair) => pair.trim()).filter(Boolean).map((pair) => {
    const i = pair.indexOf('=');
    if (i <= 0 || i === pair.length - 1) throw new UsageError(`--map "${pair}" is not column=field (e.g. --map "Email=email,Dept=attributes.dept")`);
    return [pair.slice(0, i).trim(), pair.slice(i + 1).trim().split('.')];
  });
}

function setPath(o: Record<string, unknown>, path: string[], v: string): void {
  let at = o;
  for (const p of path.slice(0, -1)) at = (at[p] ??= {}) as Record<string, unknown>;
  at[path[path.length - 1]!] = v;
}

/**
 * CSV with a header row: each record one upsert of `type`, its key from the
 * `key` column (or derived from the value, for role assignments, tuples and
 * attributes), its value from the mapped columns. Empty cells are left out.
 */
export async function* csvRecords(path: string, o: CsvOptions): AsyncGenerator<InputItem> {
  if (!typeRe.test(o.type)) throw new UsageError(`--type "${o.type}" is not a fact type: a lower-case letter, then up to 63 of a-z 0-9 _`);
  if (o.key === undefined && !hasDerivedKey(o.type)) throw new UsageError(`CSV import of ${o.type} needs --key COLUMN: the column that holds each fact's key`);
  const parser = createReadStream(path).pipe(parseCsv({ columns: true, bom: true, skip_empty_lines: true, info: true, relax_column_count: false }));
  let mapping: [string, string[]][] | undefined = o.map ? parseMap(o.map) : undefined;
  try {
    for await (const rec of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number; bytes: number } }>) {
      const { record, info } = rec;
      if (!mapping) {
        mapping = Object.keys(record).filter((col) => col !== o.key).map((col) => [col, [col]]);
      } else if (mapping.length > 0 && info.lines <= 2) {
        const missing = [...mapping.map(([col]) => col), ...(o.key ? [o.key] : [])].filter((col) => !(col in record));
        if (missing.length > 0) throw new UsageError(`${path} has no column ${missing.map((m) => JSON.stringify(m)).join(', ')}; its columns are ${Object.keys(record).map((m) => JSON.stringify(m)).join(', ')}`);
      }
      if (o.key !== undefined && !(o.key in record)) throw new UsageError(`${path} has no column "${o.key}" (--key); its columns are ${Object.keys(record).map((m) => JSON.stringify(m)).join(', ')}`);
      const value: Record<string, unknown> = {};
      for (const [col, field] of mapping) {
        const cell = record[col];
        if (cell !== undefined && cell !== '') setPath(value, field, cell);
      }
      const key = o.key !== undefined ? record[o.key] ?? '' : derivedKey(o.type, value);
      if (!key) {
        yield { line: info.lines, bytes: info.bytes, error: o.key !== undefined ? `the ${o.key} column is empty: every fact needs a key` : `the record is not a ${o.type} (${JSON.stringify(value)})` };
        continue;
      }
      yield validated(info.lines, info.bytes, { op: 'upsert', type: o.type, key, value });
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const ce = e as { code?: string; lines?: number; message: string };
    if (ce.code?.startsWith('CSV_')) throw new UsageError(`${path} line ${ce.lines ?? '?'}: ${ce.message}`);
    throw e;
  }
}

export async function readAll(s: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
  return Buffer.concat(parts).toString('utf8');
}
