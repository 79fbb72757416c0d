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
 * Scans of the in-process state (the memory and embedded stores): a scan is
 * a live iterator of the state's Map, kept between steps. A Map iterator
 * visits entries in insertion order and tolerates changes while it runs: an
 * entry deleted before it is reached is skipped, one added is visited, one
 * updated keeps its place. So a fact present throughout comes exactly once
 * and a scan costs the same few bytes whatever the env's size (a copy of the
 * keys would be 8 bytes a fact, for each open scan). A typed scan skips other
 * types, examining at most 16 × `count` entries a step. Bounded: past
 * MAX_OPEN_SCANS the oldest open scan is dropped, and continuing it is a
 * retryable error.
 */
export class ScanRegistry {
  private readonly scans = new Map<string, { it: Iterator<[string, string]>; prefix: string | undefined }>();
  private seq = 0;

  step(state: ReadonlyMap<string, string>, cursor: string, count: number, type?: string): StateScan {
    let scan = cursor === '0' ? undefined : this.scans.get(cursor);
    if (!scan) {
      if (cursor !== '0') throw new ScanCursorGone(cursor);
      scan = { it: state.entries(), prefix: type === undefined ? undefined : `${type}:` };
    }
    const facts: RawFact[] = [];
    const want = Math.max(1, count);
    let budget = want * 16;
    let done = false;
    while (facts.length < want && budget-- > 0) {
      const r = scan.it.next();
      if (r.done) {
        done = true;
        break;
      }
      const [field, valueJson] = r.value;
      if (scan.prefix === undefined || field.startsWith(scan.prefix)) facts.push({ ...splitFactField(field), valueJson });
    }
    this.scans.delete(cursor);
    if (done) return { cursor: '0', facts };
    const next = String(++this.seq);
    this.scans.set(next, scan);
    if (this.scans.size > MAX_OPEN_SCANS) this.scans.delete(this.scans.keys().next().value!);
    return { cursor: next, facts };
  }
}
