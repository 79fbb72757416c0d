import { FactsyncError, splitFactField } from '@factsync/shared';
import type { RawFact, StateScan } from './fact-store.js';

/** A cursor this store does not hold open (dropped, or never issued): start again from "0". Retryable for a stream; a client's mistake over HTTP. */
export class ScanCursorGone extends FactsyncError {
  constructor(cursor: string) {
    super('store_unavailable', `scan cursor "${cursor}" is no longer open (more than ${MAX_OPEN_SCANS} scans at once, or never issued); start again from "0"`);
  }
}

/** Open scans of one store; past it the oldest abandoned one is dropped. */
export const MAX_OPEN_SCANS = 256;

/**
 * Scans of the in-process state (the memory and embedded stores): the state
 * already lives in this process, so a scan is a walk over a copy of its keys,
 * kept per scan so that a fact present throughout comes exactly once, in steps
 * of `count`. Bounded: past MAX_OPEN_SCANS the oldest open scan is dropped,
 * and continuing it is a retryable error.
 */
export class ScanRegistry {
  private readonly scans = new Map<string, { keys: string[]; at: number }>();
  private seq = 0;

  step(state: ReadonlyMap<string, string>, cursor: string, count: number, type?: string): StateScan {
    let scan = cursor === '0' ? undefined : this.scans.get(cursor);
    if (!scan) {
      if (cursor !== '0') throw new ScanCursorGone(cursor);
      const prefix = type === undefined ? undefined : `${type}:`;
      const keys = [...state.keys()];
      scan = { keys: prefix === undefined ? keys : keys.filter((k) => k.startsWith(prefix)), at: 0 };
    }
    const facts: RawFact[] = [];
    const end = Math.min(scan.keys.length, scan.at + Math.max(1, count));
    for (; scan.at < end; scan.at++) {
      const field = scan.keys[scan.at]!;
      const valueJson = state.get(field);
      if (valueJson !== undefined) facts.push({ ...splitFactField(field), valueJson });
    }
    this.scans.delete(cursor);
    if (scan.at >= scan.keys.length) return { cursor: '0', facts };
    const next = String(++this.seq);
    this.scans.set(next, scan);
    if (this.scans.size > MAX_OPEN_SCANS) this.scans.delete(this.scans.keys().next().value!);
    return { cursor: next, facts };
  }
}
