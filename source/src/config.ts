import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { parse as parseYaml } from 'yaml';
import { SOURCE_NAME_PATTERN, TYPE_PATTERN } from '@factsync/shared';

/** A source config file (YAML or JSON); docs/sources.md describes every field. */
const TableMapping = Type.Object({
  table: Type.String({ minLength: 1, description: 'schema.table (public. when no schema is given)' }),
  type: Type.String({ pattern: TYPE_PATTERN }),
  key: Type.String({ minLength: 1 }),
  value: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
}, { additionalProperties: false });

const PostgresSource = Type.Object({
  url: Type.String({ minLength: 1 }),
  publication: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}$' }),
  slot: Type.String({ pattern: '^[a-z0-9_]{1,63}$', description: 'lower case, digits and _ (Postgres slot names)' }),
  create_publication: Type.Optional(Type.Boolean()),
  heartbeat: Type.Optional(Type.String({ pattern: '^\\d+(ms|s|m)$' })),
}, { additionalProperties: false });

const HttpSource = Type.Object({
  url: Type.String({ pattern: '^https?://' }),
  every: Type.Optional(Type.String({ pattern: '^\\d+(ms|s|m|h)$' })),
  owns: Type.Array(Type.Object({ type: Type.String({ pattern: TYPE_PATTERN }), tenant: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }), { minItems: 1 }),
  headers: Type.Optional(Type.Record(Type.String(), Type.String())),
}, { additionalProperties: false });

const SourceEntry = Type.Object({
  name: Type.String({ pattern: SOURCE_NAME_PATTERN }),
  postgres: Type.Optional(PostgresSource),
  http: Type.Optional(HttpSource),
  tables: Type.Optional(Type.Array(TableMapping, { minItems: 1 })),
}, { additionalProperties: false });

const ConfigFile = Type.Object({ sources: Type.Array(SourceEntry, { minItems: 1 }) }, { additionalProperties: false });

export type TableMapping = Static<typeof TableMapping>;
export type SourceEntry = Static<typeof SourceEntry>;
export type PostgresSourceConfig = Static<typeof PostgresSource> & { name: string; tables: TableMapping[]; heartbeatMs: number };
export type HttpSourceConfig = Static<typeof HttpSource> & { name: string; everyMs: number };
export type SourceConfig = { kind: 'postgres'; postgres: PostgresSourceConfig } | { kind: 'http'; http: HttpSourceConfig };

/** A config that cannot run: one line per mistake, each naming its path and the fix. */
export class ConfigFileError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `${problems.length} mistakes:\n  ${problems.join('\n  ')}`}`);
  }
}

const check = TypeCompiler.Compile(ConfigFile);
const pathOf = (p: string) => p.split('/').filter(Boolean).map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : `${i === 0 ? '' : '.'}${s}`)).join('');

export function durationMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d)!;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

/** Reads and checks a config file's shape (what needs the database is checked when the source starts). */
export function loadConfig(file: string, text = readFileSync(file, 'utf8')): SourceConfig[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ConfigFileError(file, [`is not YAML or JSON (${(e as Error).message.split('\n')[0]})`]);
  }
  if (!check.Check(doc)) {
    const problems = [...check.Errors(doc)].slice(0, 10).map((e) => `${pathOf(e.path) || 'the file'}: ${e.message}${e.schema.description ? ` (${e.schema.description})` : ''}`);
    throw new ConfigFileError(file, [...new Set(problems)]);
  }
  const problems: string[] = [];
  const names = new Set<string>();
  const out: SourceConfig[] = [];
  doc.sources.forEach((s, i) => {
    const at = `sources[${i}]`;
    if (names.has(s.name)) problems.push(`${at}.name: "${s.name}" is used twice; each source needs its own name (its position is kept under it)`);
    names.add(s.name);
    if ((s.postgres ? 1 : 0) + (s.http ? 1 : 0) !== 1) {
      problems.push(`${at}: give exactly one of postgres: or http:`);
      return;
    }
    if (s.postgres) {
      if (!s.tables) {
        problems.push(`${at}.tables: a postgres source maps at least one table (table, type, key, value)`);
        return;
      }
      s.tables.forEach((t, j) => {
        if (!/\{[A-Za-z_][A-Za-z0-9_]*\}/.test(t.key)) problems.push(`${at}.tables[${j}].key: "${t.key}" names no column; a key template names the columns that identify a row, e.g. "{id}"`);
      });
      out.push({ kind: 'postgres', postgres: { ...s.postgres, name: s.name, tables: s.tables, heartbeatMs: durationMs(s.postgres.heartbeat ?? '10s') } });
    } else if (s.http) {
      if (s.tables) problems.push(`${at}.tables: an http source serves facts as JSON lines; tables are for postgres sources`);
      out.push({ kind: 'http', http: { ...s.http, name: s.name, everyMs: durationMs(s.http.every ?? '30s') } });
    }
  });
  if (problems.length > 0) throw new ConfigFileError(file, problems);
  return out;
}

export const sourceName = (s: SourceConfig): string => (s.kind === 'postgres' ? s.postgres.name : s.http.name);
