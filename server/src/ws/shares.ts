import { FactsyncError, GENESIS_ID, idOfChangeJson, shareOfChange, type Change, type Scope } from '@factsync/shared';
import type { FactLog, RawChange, ResumeVerdict } from '../store/fact-store.js';
import type { ChangeBatch } from '../broadcast/env-feed.js';

/**
 * The share of `changes` for `scope` as a JSON array, the first linked to
 * `prevId`; and the id of the last. A run of versions with nothing for this
 * share travels as one change (`from`..`version`, the run's first link): a
 * quiet share costs one small change per frame, not one per version.
 */
export function shareChanges(changes: readonly RawChange[], prevId: string, scope: Scope, parsed?: readonly Change[]): { json: string; lastId: string } {
  let prev = prevId;
  const out: Change[] = [];
  for (let i = 0; i < changes.length; i++) {
    const s = shareOfChange(parsed?.[i] ?? (JSON.parse(changes[i]!.json) as Change), prev, scope);
    const last = out[out.length - 1];
    if (last && last.ops.length === 0 && s.ops.length === 0) out[out.length - 1] = { ...s, prev: last.prev, from: last.from ?? last.version };
    else out.push(s);
    prev = s.id;
  }
  return { json: `[${out.map((c) => JSON.stringify(c)).join(',')}]`, lastId: prev };
}

/** The refusal of a share the log cannot continue, for readers that have no snapshot of it (HTTP pages). */
export const logOnly = (env: string, why: string): FactsyncError => new FactsyncError('log_truncated',
  `${why}: read the facts of this share again (GET /v1/envs/${env}/facts?type=…&tenant=…, or a websocket session, which sends a snapshot of the share) and follow from the version that read gives`);

/**
 * What one scoped session has been sent: its scope and the chain id of its
 * last version, which the next frame's first change links to.
 */
export class ShareStream {
  private lastId = GENESIS_ID;

  constructor(readonly scope: Scope) {}

  /**
   * Where a session of this scope starts for a hello with this verdict: the
   * version it continues from in the log, or undefined when a snapshot of the
   * share follows. An acking (scoped) agent gets a snapshot when its history
   * cannot be continued; a subscriber has nowhere to put one, so it continues
   * from the log only (from 0 for `new`) or is refused.
   */
  async start(log: FactLog, env: string, h: { applied: number; applied_id?: string | null | undefined }, verdict: ResumeVerdict, acking: boolean, frameBytes: number): Promise<number | undefined> {
    const at = verdict === 'resume' ? h.applied : verdict === 'new' && !acking ? 0 : undefined;
    if (at === undefined) {
      if (acking) return undefined;
      throw logOnly(env, `this history cannot be continued after version ${h.applied} (${verdict})`);
    }
    const id = at === 0 ? GENESIS_ID : (h.applied_id ?? await idAt(log, env, at, frameBytes));
    if (id === undefined) {
      if (acking) return undefined;
      throw logOnly(env, `the log no longer holds version ${at}, whose id the hello did not send (applied_id)`);
    }
    this.lastId = id;
    return at;
  }

  /** The stream continues after a snapshot of the share whose last version has this id. */
  after(id: string): void {
    this.lastId = id;
  }

  /** A frame of the share of consecutive changes following the last one sent. */
  frameOf(changes: readonly RawChange[]): string {
    return this.take(asFrame(shareChanges(changes, this.lastId, this.scope)));
  }

  /** The same for a live batch, built once per batch and scope however many sockets take it. */
  frameOfBatch(batch: ChangeBatch): string {
    const cache = (batch.shares ??= new Map());
    let built = cache.get(this.scope.key);
    // Sessions at the batch's first version all hold the same previous id, so the frame is the same for each.
    if (!built) {
      batch.parsed ??= batch.changes.map((c) => JSON.parse(c.json) as Change);
      cache.set(this.scope.key, (built = asFrame(shareChanges(batch.changes, this.lastId, this.scope, batch.parsed))));
    }
    return this.take(built);
  }

  private take(s: { frame: string; lastId: string }): string {
    this.lastId = s.lastId;
    return s.frame;
  }
}

const asFrame = (s: { json: string; lastId: string }) => ({ frame: `{"type":"changes","changes":${s.json}}`, lastId: s.lastId });

/** The chain id of `version`, read from the log; undefined when the log no longer holds it. */
async function idAt(log: FactLog, env: string, version: number, frameBytes: number): Promise<string | undefined> {
  const page = await log.changes(env, version - 1, 1, frameBytes);
  const c = page.truncated ? undefined : page.changes[0];
  if (!c || c.version !== version) return undefined;
  return idOfChangeJson(c.json) ?? '';
}
