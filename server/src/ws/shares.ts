import { FactsyncError, GENESIS_ID, idOfChangeJson, shareOfChange, typesKey, type Change } from '@factsync/shared';
import type { FactLog, RawChange, ResumeVerdict } from '../store/fact-store.js';
import type { ChangeBatch } from '../broadcast/env-feed.js';

/** What a subscriber with `types` receives: its types (a set) and their canonical key. */
export interface Share {
  types: ReadonlySet<string>;
  key: string;
}

export const shareOf = (types: readonly string[]): Share => ({ types: new Set(types), key: typesKey(types) });

/**
 * The share of `changes` as a JSON array, the first linked to `prevId`; and the
 * id of the last. A run of versions with nothing for this share travels as one
 * change (`from`..`version`, the run's first link): a quiet share costs one
 * small change per frame, not one per version.
 */
export function shareChanges(changes: readonly RawChange[], prevId: string, share: Share): { json: string; lastId: string } {
  let prev = prevId;
  const out: Change[] = [];
  for (const c of changes) {
    const s = shareOfChange(JSON.parse(c.json) as Change, prev, share.types);
    const last = out[out.length - 1];
    if (last && last.ops.length === 0 && s.ops.length === 0) out[out.length - 1] = { ...s, prev: last.prev, from: last.from ?? last.version };
    else out.push(s);
    prev = s.id;
  }
  return { json: `[${out.map((c) => JSON.stringify(c)).join(',')}]`, lastId: prev };
}

/** The refusal of a typed subscription the log cannot continue: there is no snapshot of a share (yet). */
export const logOnly = (env: string, why: string): FactsyncError => new FactsyncError('log_truncated',
  `${why}, and a subscription with types continues from the log only: read the facts of these types again (GET /v1/envs/${env}/facts?type=…) and subscribe from the version that read gives`);

/**
 * What one subscription with `types` has been sent: its share and the chain id
 * of its last version, which the next frame's first change links to.
 */
export class ShareStream {
  private readonly share: Share;
  private lastId = GENESIS_ID;

  constructor(types: readonly string[]) {
    this.share = shareOf(types);
  }

  /**
   * Where the stream starts for a hello with this verdict: version 0 for `new`,
   * `applied` for `resume` (its id from the hello, else read from the log).
   */
  async start(log: FactLog, env: string, h: { applied: number; applied_id?: string | null | undefined }, verdict: ResumeVerdict, frameBytes: number): Promise<number> {
    if (verdict !== 'resume' && verdict !== 'new') throw logOnly(env, `this history cannot be continued after version ${h.applied} (${verdict})`);
    const at = verdict === 'new' ? 0 : h.applied;
    this.lastId = at === 0 ? GENESIS_ID : (h.applied_id ?? await idAt(log, env, at, frameBytes));
    return at;
  }

  /** A frame of the share of consecutive changes following the last one sent. */
  frameOf(changes: readonly RawChange[]): string {
    return this.take(asFrame(shareChanges(changes, this.lastId, this.share)));
  }

  /** The same for a live batch, built once per batch and set of types however many sockets take it. */
  frameOfBatch(batch: ChangeBatch): string {
    const cache = (batch.shares ??= new Map());
    let built = cache.get(this.share.key);
    // Sessions at the batch's first version all hold the same previous id, so the frame is the same for each.
    if (!built) cache.set(this.share.key, (built = asFrame(shareChanges(batch.changes, this.lastId, this.share))));
    return this.take(built);
  }

  private take(s: { frame: string; lastId: string }): string {
    this.lastId = s.lastId;
    return s.frame;
  }
}

const asFrame = (s: { json: string; lastId: string }) => ({ frame: `{"type":"changes","changes":${s.json}}`, lastId: s.lastId });

/** The chain id of `version`, read from the log. */
async function idAt(log: FactLog, env: string, version: number, frameBytes: number): Promise<string> {
  const page = await log.changes(env, version - 1, 1, frameBytes);
  const c = page.truncated ? undefined : page.changes[0];
  if (!c || c.version !== version) throw logOnly(env, `the log no longer holds version ${version}, whose id the hello did not send (applied_id)`);
  return idOfChangeJson(c.json) ?? '';
}
