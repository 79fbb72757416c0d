import { followsHistory } from './subscription.js';
import type { Change, Fact } from './facts.js';
import type { SnapshotMessage } from './messages.js';

/** A whole snapshot: `facts` at base `version`, then `replay` on top; the result is the env at `at`. */
export interface AssembledSnapshot {
  version: number;
  epoch: string | null;
  id: string | null;
  facts: Fact[];
  replay: Change[];
  /** The version the snapshot leaves the state at: the last replayed change, else `version`. */
  at: number;
  /** How many facts the state must hold once applied (sent on the last frame), when known. */
  count?: number;
}

/**
 * Gathers the frames of one snapshot (`last: false` … `last: true`): the
 * facts, then the changes the server read from its log while it scanned them.
 * A frame of another base (version, epoch) starts over, and so do facts after
 * changes (the server began a new scan from the same base). Whoever applies
 * the result applies the facts and the replay in one step.
 */
export class SnapshotAssembly {
  private partial: AssembledSnapshot | undefined;

  /** The whole snapshot once its last frame arrived, else undefined. */
  add(m: SnapshotMessage): AssembledSnapshot | undefined {
    let p = this.partial;
    if (!p || p.version !== m.version || p.epoch !== m.epoch || (p.replay.length > 0 && m.facts.length > 0)) {
      p = this.partial = { version: m.version, epoch: m.epoch, id: m.id ?? null, facts: [], replay: [], at: m.version };
    }
    for (const f of m.facts) p.facts.push(f as Fact);
    if (m.changes) for (const c of m.changes) p.replay.push(c as Change);
    if (m.last === false) return undefined;
    this.partial = undefined;
    p.at = p.replay.length > 0 ? p.replay[p.replay.length - 1]!.version : p.version;
    if (m.count !== undefined) p.count = m.count;
    return p;
  }

  /** Frames of a snapshot whose socket ended are worth nothing: the next session sends a whole one. */
  reset(): void {
    this.partial = undefined;
  }
}

/**
 * Where the changes sent with a snapshot stop continuing it (the version that
 * breaks the sequence, or the chain from its id: invariant 9), or null.
 */
export function replayBreak(s: Pick<AssembledSnapshot, 'version' | 'id' | 'replay'>): number | null {
  let prev = s.id;
  let at = s.version;
  for (const c of s.replay) {
    if (c.version !== at + 1 || (prev !== null && !followsHistory(prev, c))) return c.version;
    prev = c.id;
    at = c.version;
  }
  return null;
}
