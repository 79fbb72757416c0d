import { shareOfChange, typesKey, type Change } from '@factsync/shared';
import type { RawChange } from '../store/fact-store.js';
import type { ChangeBatch } from '../broadcast/env-feed.js';

/** What a subscriber with `types` receives: its types (a set) and their canonical key. */
export interface Share {
  types: ReadonlySet<string>;
  key: string;
}

/** A `changes` frame of the share of `changes`, the first linked to `prevId`; and the id of the last. */
export function shareFrame(changes: readonly RawChange[], prevId: string, share: Share): { frame: string; lastId: string } {
  let prev = prevId;
  const out: Change[] = [];
  for (const c of changes) {
    const s = shareOfChange(JSON.parse(c.json) as Change, prev, share.types);
    const last = out[out.length - 1];
    // A run of versions with nothing for this share travels as one change: a quiet share costs
    // one small change per frame, not one per version. It keeps the run's first link.
    if (last && last.ops.length === 0 && s.ops.length === 0) out[out.length - 1] = { ...s, prev: last.prev, from: last.from ?? last.version };
    else out.push(s);
    prev = s.id;
  }
  return { frame: `{"type":"changes","changes":[${out.map((c) => JSON.stringify(c)).join(',')}]}`, lastId: prev };
}

/**
 * The share of a live batch, built once per batch and share key however many
 * sockets take it (sessions at the batch's first version all hold the same
 * previous id, so the frame is the same for each).
 */
export function batchShare(batch: ChangeBatch, prevId: string, share: Share): { frame: string; lastId: string } {
  const cache = (batch.shares ??= new Map());
  let built = cache.get(share.key);
  if (!built) cache.set(share.key, (built = shareFrame(batch.changes, prevId, share)));
  return built;
}

/**
 * What one subscription with `types` has been sent: its share and the chain id
 * of its last version, which the next frame's first change links to.
 */
export class ShareStream {
  private readonly share: Share;

  constructor(types: readonly string[], private lastId: string) {
    this.share = { types: new Set(types), key: typesKey(types) };
  }

  /** The link the next change will carry (where the stream resumes). */
  set resumeAt(id: string) {
    this.lastId = id;
  }

  /** A frame of the share of consecutive changes following the last one sent. */
  frameOf(changes: readonly RawChange[]): string {
    return this.take(shareFrame(changes, this.lastId, this.share));
  }

  /** The same for a live batch, built once per batch and set of types. */
  frameOfBatch(batch: ChangeBatch): string {
    return this.take(batchShare(batch, this.lastId, this.share));
  }

  private take(s: { frame: string; lastId: string }): string {
    this.lastId = s.lastId;
    return s.frame;
  }
}
