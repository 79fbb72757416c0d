import { GENESIS_ID, idOfChangeJson, shareOfChange, tenantOfFact, tenantInValue, type Change, type Scope } from '@factsync/shared';
import type { RawFact } from '../store/fact-store.js';
import type { FactLog, Snapshot } from '../store/fact-store.js';
import { SnapshotFrameBuilder, factJson, snapshotFrames } from './frames.js';

/** Where one session's snapshot frames go. */
export interface SnapshotSink {
  /** Resolves once the frame was handed to the kernel (or at once when the socket is gone). */
  send(frame: Buffer): Promise<void>;
  readonly gone: boolean;
}

/** What a streamed snapshot left the agent at. */
export interface SnapshotSent {
  version: number;
  epoch: string | null;
  id: string;
  facts: number;
  /** Log versions replayed over the scanned facts. */
  replayed: number;
}

/** Scans that raced the log (it was trimmed under them, or the store was reset) before reading at once. */
const MAX_SCAN_ATTEMPTS = 3;

interface Round {
  readonly sinks: SnapshotSink[];
  result?: Promise<SnapshotSent | null>;
}

/**
 * Snapshots streamed with bounded memory (invariant 10). The state is read in
 * steps of a fuzzy scan from the head S0, then the log from S0 to the head
 * after the scan is sent for the agent to replay over the facts: the result is
 * exactly the state at the end (FactLog.scanState). The server holds one
 * scan step and one frame per stream, never the env.
 *
 * Sessions that ask for the same env's snapshot before its round sent its
 * first frame join that round: one scan, each frame built once and sent to all,
 * paced by the slowest (a reader that takes nothing is cut by its session).
 * At most `maxStreams` rounds run at a time; the others queue.
 */
export class SnapshotReads {
  private readonly pending = new Map<string, Round>();
  private readonly wholeReads = new Map<string, Promise<Snapshot>>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly scanCount: number;

  constructor(
    private readonly store: FactLog,
    private readonly maxStreams: number,
    private readonly frameBytes: number,
    private readonly pageSize: number,
  ) {
    // About one frame of facts per scan step (facts run ~100-200 bytes).
    this.scanCount = Math.max(100, Math.min(10_000, Math.floor(frameBytes / 160)));
  }

  /**
   * Streams a snapshot of `env` to `sink`, of the share of `scope` when given;
   * null when every sink of its round went away first. Rounds are per env and
   * scope: sessions of the same scope share one.
   */
  stream(env: string, sink: SnapshotSink, scope?: Scope): Promise<SnapshotSent | null> {
    const roundKey = scope ? `${env}\u0000${scope.key}` : env;
    let round = this.pending.get(roundKey);
    if (!round) {
      const r: Round = { sinks: [] };
      r.result = this.run(env, roundKey, r, scope);
      this.pending.set(roundKey, (round = r));
    }
    round.sinks.push(sink);
    return round.result!;
  }

  /**
   * The state read at once, for the HTTP snapshot (one consistent version, no
   * replay for the client to do): concurrent reads of an env share one, and
   * each takes a stream slot while it reads.
   */
  whole(env: string): Promise<Snapshot> {
    let p = this.wholeReads.get(env);
    if (!p) {
      p = (async () => {
        const release = await this.slot();
        try {
          return await this.store.snapshot(env);
        } finally {
          release();
        }
      })().finally(() => this.wholeReads.delete(env));
      this.wholeReads.set(env, p);
    }
    return p;
  }

  get streaming(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  private async run(env: string, roundKey: string, round: Round, scope: Scope | undefined): Promise<SnapshotSent | null> {
    const release = await this.slot();
    // Open to newcomers until its first frame leaves: they then get every frame. A later request
    // starts the next round.
    const seal = (): void => {
      if (this.pending.get(roundKey) === round) this.pending.delete(roundKey);
    };
    try {
      return await this.read(env, round.sinks, seal, scope);
    } finally {
      seal();
      release();
    }
  }

  private async read(env: string, sinks: readonly SnapshotSink[], seal: () => void, scope: Scope | undefined): Promise<SnapshotSent | null> {
    const live = (): SnapshotSink[] => sinks.filter((s) => !s.gone);
    // One encoding for every socket of the round, in the builder's reused buffer: each frame is
    // taken by every socket before the next is built.
    const send = async (frame: Buffer): Promise<boolean> => {
      seal();
      const to = live();
      if (to.length === 0) return false;
      await Promise.all(to.map((s) => s.send(frame)));
      return true;
    };
    for (let attempt = 1; attempt <= MAX_SCAN_ATTEMPTS; attempt++) {
      if (live().length === 0) return null;
      const base = await this.store.head(env);
      const frames = new SnapshotFrameBuilder(base, this.frameBytes);
      let cursor = '0';
      let facts = 0;
      const share = scope ? new ShareCount(scope) : undefined;
      do {
        const step = await this.store.scanState(env, cursor, this.scanCount);
        cursor = step.cursor;
        for (const f of step.facts) {
          if (share && !share.scanned(f)) continue;
          facts++;
          const full = frames.fact(factJson(f));
          if (full !== undefined && !(await send(full))) return null;
        }
        if (live().length === 0) return null;
      } while (cursor !== '0');

      // What was written during the scan follows, for the agent to replay over what it scanned; with
      // the head after the scan comes the number of facts at it, which the agent checks its result
      // against (a scan that missed a fact, e.g. under a Redis Cluster resharding, is not served).
      const end = await this.store.headWithCount(env);
      if (end.epoch !== base.epoch) continue; // the store was reset under the scan: start over
      let at = base.version;
      let id = base.id;
      let complete = true;
      while (at < end.version) {
        const page = await this.store.changes(env, at, this.pageSize, this.frameBytes);
        if (page.truncated || page.epoch !== base.epoch || page.changes.length === 0) {
          complete = false; // trimmed past S0 while we scanned: a scan from a newer head
          break;
        }
        for (const c of page.changes) {
          if (c.version > end.version) break;
          const full = frames.change(share ? share.replayed(c.json, id) : c.json);
          if (full !== undefined && !(await send(full))) return null;
          at = c.version;
          id = idOfChangeJson(c.json) ?? '';
        }
      }
      if (!complete) continue;
      if (!(await send(frames.end(share ? share.count : end.facts)))) return null;
      return { version: at, epoch: base.epoch, id, facts, replayed: at - base.version };
    }
    // The log keeps outrunning the scan: read the state at once (memory: the env, once per round).
    const whole = await this.store.snapshot(env);
    const snap = scope ? { ...whole, facts: whole.facts.filter((f) => new ShareCount(scope).scanned(f)) } : whole;
    for (const frame of snapshotFrames(snap, this.frameBytes)) if (!(await send(frame))) return null;
    return { version: snap.version, epoch: snap.epoch, id: snap.id, facts: snap.facts.length, replayed: 0 };
  }

  /** Resolves with a release function once a round may stream. */
  private async slot(): Promise<() => void> {
    // A released slot passes straight to the next in line, so the count never overshoots.
    if (this.active < this.maxStreams) this.active++;
    else await new Promise<void>((r) => this.waiting.push(r));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}

/**
 * The facts of a share in a scanned snapshot, and how many it holds once the
 * replay is applied: the count the agent checks its state against (a scan of
 * the whole env counts with HLEN; a share has no count of its own in the
 * store). It remembers the keys of the share it saw, so its memory is that of
 * the share's keys, once per round.
 */
class ShareCount {
  private readonly keys = new Set<string>();

  constructor(private readonly scope: Scope) {}

  get count(): number {
    return this.keys.size;
  }

  /** Whether a scanned fact is in the share (and counts it). */
  scanned(f: RawFact): boolean {
    const { types, tenants } = this.scope;
    if (types && !types.has(f.type)) return false;
    if (tenants) {
      const t = tenantOfFact(f.type, f.key, tenantInValue(f.type) ? JSON.parse(f.valueJson) : null);
      if (t !== undefined && !tenants.has(t)) return false;
    }
    this.keys.add(`${f.type}\u0000${f.key}`);
    return true;
  }

  /** The share of a replayed change (stored JSON), linked to the id before it, as JSON; counts its ops. */
  replayed(json: string, prevId: string | null): string {
    const s = shareOfChange(JSON.parse(json) as Change, prevId ?? GENESIS_ID, this.scope);
    for (const o of s.ops) {
      if (o.op === 'upsert') this.keys.add(`${o.type}\u0000${o.key}`);
      else this.keys.delete(`${o.type}\u0000${o.key}`);
    }
    return JSON.stringify(s);
  }
}
