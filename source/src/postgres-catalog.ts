import type pg from 'pg';
import type { CompiledTable } from './mapping.js';

/**
 * The checks a Postgres source makes at start, against the database's own
 * catalog: each mistake is one line naming the mapping and the fix. Nothing
 * is streamed before all pass.
 */
export async function checkCatalog(db: pg.Client, publication: string, createPublication: boolean, tables: readonly CompiledTable[]): Promise<string[]> {
  const problems: string[] = [];
  const found: CompiledTable[] = [];
  for (const t of tables) {
    const rel = await db.query<{ oid: number; relreplident: string }>(
      `SELECT c.oid, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
      [t.schema, t.table]);
    if (rel.rowCount === 0) {
      problems.push(`${t.at}.table: there is no table ${t.schema}.${t.table} in this database`);
      continue;
    }
    const { oid, relreplident } = rel.rows[0]!;
    const cols = (await db.query<{ attname: string }>('SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum', [oid])).rows.map((r) => r.attname);
    const missing = t.columns.filter((c) => !cols.includes(c));
    for (const c of missing) {
      const where = t.keyColumns.includes(c) ? 'key' : 'value';
      problems.push(`${t.at}.${where}: column "${c}" is not in ${t.schema}.${t.table} (columns: ${cols.join(', ')})`);
    }
    if (missing.length > 0) continue;
    const indexes = (await db.query<{ indisprimary: boolean; indisreplident: boolean; cols: string[] }>(
      `SELECT i.indisprimary, i.indisreplident, ARRAY(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k)::text[] AS cols
       FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL`, [oid])).rows;
    const keySet = new Set(t.keyColumns);
    if (!indexes.some((ix) => ix.cols.every((c) => keySet.has(c)))) {
      const unique = indexes.map((ix) => `(${ix.cols.join(', ')})`).join(', ');
      problems.push(`${t.at}.key: "${t.keyColumns.map((c) => `{${c}}`).join(', ')}" does not identify a row of ${t.schema}.${t.table}: use the columns of its primary key or of a unique index${unique ? ` (${unique})` : ' (it has none: add a primary key)'}`);
      continue;
    }
    // What a delete carries: the replica identity's columns; the key must be made from them.
    const identity = relreplident === 'f' ? cols
      : relreplident === 'd' ? indexes.find((ix) => ix.indisprimary)?.cols ?? []
        : relreplident === 'i' ? indexes.find((ix) => ix.indisreplident)?.cols ?? [] : [];
    if (!t.keyColumns.every((c) => identity.includes(c))) {
      problems.push(`${t.at}.key: deletes of ${t.schema}.${t.table} carry only ${identity.length > 0 ? `(${identity.join(', ')})` : 'nothing (REPLICA IDENTITY NOTHING, or no primary key)'}, not every key column; run ALTER TABLE ${t.sql} REPLICA IDENTITY FULL, or build the key from the primary key`);
      continue;
    }
    found.push(t);
  }
  const pub = await db.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication]);
  if (pub.rowCount === 0) {
    if (!createPublication) {
      problems.push(`postgres.publication: there is no publication "${publication}": CREATE PUBLICATION ${publication} FOR TABLE ${tables.map((t) => t.sql).join(', ')}; or set create_publication: true`);
      return problems;
    }
    if (problems.length === 0) await db.query(`CREATE PUBLICATION "${publication}" FOR TABLE ${tables.map((t) => t.sql).join(', ')}`);
    return problems;
  }
  const published = new Set((await db.query<{ schemaname: string; tablename: string }>('SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1', [publication])).rows.map((r) => `${r.schemaname}.${r.tablename}`));
  for (const t of found) {
    if (!published.has(`${t.schema}.${t.table}`)) {
      if (createPublication) await db.query(`ALTER PUBLICATION "${publication}" ADD TABLE ${t.sql}`);
      else problems.push(`${t.at}.table: publication "${publication}" does not include ${t.schema}.${t.table}: ALTER PUBLICATION ${publication} ADD TABLE ${t.sql}`);
    }
  }
  return problems;
}
