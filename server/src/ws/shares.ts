import { shareOfChange, type Change } from '@factsync/shared';
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
  const parts: string[] = [];
  for (const c of changes) {
    const whole = JSON.parse(c.json) as Change;
    parts.push(JSON.stringify(shareOfChange(whole, prev, share.types)));
    prev = whole.id;
  }
  return { frame: `{"type":"changes","changes":[${parts.join(',')}]}`, lastId: prev };
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
