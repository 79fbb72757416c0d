import type { TableMapping } from './config.js';
import { UNCHANGED, compileString, compileValue, hasUnchanged, keyPattern, type Row, type Template } from './template.js';

/** A table mapping, compiled: which facts a row becomes, and which facts the mapping owns. */
export interface CompiledTable {
  /** Where it is in the config, for messages. */
  at: string;
  schema: string;
  table: string;
  /** "schema"."table", quoted for SQL. */
  sql: string;
  type: string;
  key: Template;
  /** The keys the key template can produce: the facts of `type` this mapping owns. */
  owns: RegExp;
  value: Template;
  /** Every column the mapping reads. */
  columns: string[];
  /** Columns of the key template: what a delete (the replica identity) must carry. */
  keyColumns: string[];
}

export interface MappedFact {
  type: string;
  key: string;
  /** With UNCHANGED leaves where an unchanged TOASTed column was used. */
  value: Record<string, unknown>;
  partial: boolean;
}

const quote = (id: string) => `"${id.replace(/"/g, '""')}"`;

export function compileTable(t: TableMapping, at: string): CompiledTable {
  const [schema, table] = t.table.includes('.') ? [t.table.slice(0, t.table.indexOf('.')), t.table.slice(t.table.indexOf('.') + 1)] : ['public', t.table];
  const key = compileString(t.key);
  const value = compileValue(t.value ?? {});
  return {
    at, schema, table, sql: `${quote(schema)}.${quote(table)}`, type: t.type, key, owns: keyPattern(t.key), value,
    columns: [...new Set([...key.columns, ...value.columns])], keyColumns: [...new Set(key.columns)],
  };
}

/** The fact a row becomes; undefined when its key cannot be made (a key column that was not sent). */
export function factOf(m: CompiledTable, row: Row): MappedFact | undefined {
  const key = m.key.render(row);
  if (key === UNCHANGED || key === null || key === '') return undefined;
  const value = m.value.render(row) as Record<string, unknown>;
  return { type: m.type, key: String(key), value, partial: hasUnchanged(value) };
}

/** The key a row had (from a delete's or update's old tuple); undefined when the tuple lacks key columns. */
export function keyOf(m: CompiledTable, row: Row | null | undefined): string | undefined {
  if (!row || m.keyColumns.some((c) => !(c in row) || row[c] === undefined)) return undefined;
  const k = m.key.render(row);
  return k === UNCHANGED || k === null ? undefined : String(k);
}
