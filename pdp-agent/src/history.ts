import { appendFileSync } from 'node:fs';
import type { LocalStore } from './local-store.js';

/**
 * The apply history for the history checker (test/src/history-checker.ts): one
 * JSON line per applied version with the hash of the state after it. Written
 * synchronously so a line is on disk before the version is acked; it is an
 * audit aid, enabled with HISTORY_FILE, not for production hot paths.
 */
export class HistoryWriter {
  constructor(private readonly path: string) {}

  /** `id` is the chain id at v (invariant 9), so the checker can compare each agent's history with the server's. */
  record(v: number, h: string, kind: 'change' | 'snapshot' | 'restore', epoch?: string | null, id?: string | null): void {
    appendFileSync(this.path, `${JSON.stringify({ v, h, kind, ...(epoch !== undefined ? { epoch } : {}), ...(id ? { id } : {}), t: Date.now() })}\n`);
  }

  /** A snapshot may also release buffered changes; those are recorded by the applier callback after this line. */
  recordSnapshot(v: number, epoch: string | null, store: LocalStore): void {
    this.record(v, store.stateHash!, 'snapshot', epoch, store.lastId);
  }
}
