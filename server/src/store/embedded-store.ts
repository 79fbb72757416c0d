import type { FactStore } from './fact-store.js';
import { createMemoryStore, type MemoryStoreOptions } from './memory-store.js';
import { openSqliteJournal } from './sqlite-journal.js';

export interface EmbeddedStoreOptions extends Omit<MemoryStoreOptions, 'journal' | 'initial' | 'kind'> {
  dataDir: string;
  onLoadProgress?: (facts: number) => void;
  synchronous?: 'FULL' | 'NORMAL';
}

/**
 * The durable embedded store: one server, no Redis. The memory store's rules
 * (the same as the Redis scripts') over a state loaded from, and journaled
 * to, a SQLite file under `dataDir` before each answer (`sqlite-journal.ts`).
 * Throws `DataDirError` (one line) for a directory in use or a file that is
 * not a factsync store.
 */
export function createEmbeddedStore(o: EmbeddedStoreOptions): { store: FactStore; envs: number; facts: number } {
  const { dataDir, onLoadProgress, synchronous, ...common } = o;
  const { journal, state } = openSqliteJournal({ dataDir, now: o.now, onLoadProgress, synchronous });
  let facts = 0;
  for (const e of state.envs.values()) facts += e.state.size;
  return { store: createMemoryStore({ ...common, journal, initial: state, kind: 'embedded' }), envs: state.envs.size, facts };
}
