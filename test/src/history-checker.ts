import { readFileSync, existsSync } from 'node:fs';
import { IncrementalHash, type Fact, type Op } from '@factsync/shared';
import type { WriteRecord } from './load-writers.js';

export interface HistoryEntry {
  v: number;
  h: string;
  kind: 'change' | 'snapshot' | 'restore';
  epoch?: string | null;
  /** Chain id at v as the agent had it (invariant 9). */
  id?: string;
  /** When the agent recorded it (ms epoch), before acking it. */
  t?: number;
}

export function readHistory(path: string): HistoryEntry[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as HistoryEntry);
}

export interface CheckResult {
  violations: string[];
  head: number;
  agents: number;
  changesChecked: number;
  snapshots: number;
  restores: number;
}

/** Expected state hash after every version, replaying what the writers were told they wrote. */
function replay(writes: Map<number, Op[]>, head: number): string[] {
  const hash = new IncrementalHash();
  const state = new Map<string, unknown>();
  const out = [hash.hex()];
  for (let v = 1; v <= head; v++) {
    for (const op of writes.get(v) ?? []) {
      const field = `${op.type}\u0000${op.key}`;
      const old = state.get(field);
      if (old !== undefined) hash.remove(op.type, op.key, old);
      if (op.op === 'upsert') {
        state.set(field, op.value);
        hash.add(op.type, op.key, op.value);
      } else state.delete(field);
    }
    out.push(hash.hex());
  }
  return out;
}

export function hashOfFacts(facts: readonly Fact[]): string {
  const h = new IncrementalHash();
  for (const f of facts) h.add(f.type, f.key, f.value);
  return h.hex();
}

/**
 * The history checker (issue: "Prove it survives"). For every agent: the
 * versions it applied one by one are consecutive (no gap, duplicate or
 * reorder) between snapshots/restores; the state hash after every version
 * equals a replay of the writes; it ends at head. For the writers: versions
 * 1..head were each given to exactly one write (none lost, none invented).
 * And the server's snapshot at head equals the replay (acknowledged writes survived).
 */
export function checkHistories(input: {
  writes: WriteRecord[];
  histories: Map<string, HistoryEntry[]>;
  head: number;
  snapshotFacts: readonly Fact[];
  /** The server's chain ids by version (what its log still holds): every agent's id at v must be the same. */
  chain?: ReadonlyMap<number, string>;
}): CheckResult {
  const violations: string[] = [];
  const byVersion = new Map<number, Op[]>();
  const ids = new Map<number, string>();
  for (const w of input.writes) {
    const prev = ids.get(w.version);
    if (prev !== undefined && prev !== w.id) violations.push(`version ${w.version} was given to two writes: ${prev} and ${w.id}`);
    ids.set(w.version, w.id);
    byVersion.set(w.version, w.ops);
  }
  for (let v = 1; v <= input.head; v++) if (!byVersion.has(v)) violations.push(`version ${v} exists but no writer was given it`);
  for (const v of byVersion.keys()) if (v > input.head) violations.push(`writer was given version ${v} beyond head ${input.head} (lost write)`);

  const expected = replay(byVersion, input.head);
  if (hashOfFacts(input.snapshotFacts) !== expected[input.head]) violations.push(`server snapshot at ${input.head} differs from the replay of acknowledged writes`);

  let changesChecked = 0;
  let snapshots = 0;
  let restores = 0;
  for (const [agent, entries] of input.histories) {
    let prev: number | undefined;
    for (const e of entries) {
      if (e.kind === 'change') {
        changesChecked++;
        if (prev === undefined) violations.push(`${agent}: applied change ${e.v} before any snapshot or restore`);
        else if (e.v !== prev + 1) violations.push(`${agent}: applied ${e.v} after ${prev} (${e.v <= prev ? 'duplicate or reorder' : 'gap'})`);
      } else if (e.kind === 'snapshot') snapshots++;
      else restores++;
      if (e.v > input.head) violations.push(`${agent}: ${e.kind} at ${e.v} is beyond head ${input.head}`);
      else if (e.h !== expected[e.v]) violations.push(`${agent}: state after ${e.kind} ${e.v} differs from the replay`);
      const serverId = input.chain?.get(e.v);
      if (serverId !== undefined && e.id !== undefined && e.id !== serverId) violations.push(`${agent}: chain id after ${e.kind} ${e.v} is not the server's (a forked history)`);
      if (input.chain && e.kind === 'change' && e.id === undefined) violations.push(`${agent}: change ${e.v} was applied without a chain id`);
      prev = e.v;
    }
    const last = entries[entries.length - 1];
    if (!last || last.v !== input.head) violations.push(`${agent}: ended at ${last?.v ?? 'nothing'}, head is ${input.head}`);
  }
  return { violations: violations.slice(0, 50), head: input.head, agents: input.histories.size, changesChecked, snapshots, restores };
}

/**
 * `synced` is never early (invariant: a wait is released only by acks of what
 * an agent applied): for every write answered with an agent in `acked`, that
 * agent's history holds a version ≥ the write's, recorded before the answer
 * arrived. Returns the violations and how many acks were checked.
 */
export function checkSyncedNeverEarly(writes: WriteRecord[], histories: Map<string, HistoryEntry[]>): { violations: string[]; acksChecked: number; syncedTrue: number; syncedFalse: number } {
  const violations: string[] = [];
  let acksChecked = 0;
  let syncedTrue = 0;
  let syncedFalse = 0;
  for (const w of writes) {
    if (!w.sync || w.repliedAt === undefined) continue;
    if (w.sync.synced) syncedTrue++;
    else syncedFalse++;
    for (const agent of w.sync.acked) {
      acksChecked++;
      const entries = histories.get(agent);
      if (!entries) {
        violations.push(`write ${w.id} (version ${w.version}) was acked by ${agent}, which has no history`);
        continue;
      }
      const applied = entries.find((e) => e.v >= w.version && e.t !== undefined && e.t <= w.repliedAt!);
      if (!applied) violations.push(`write ${w.id} (version ${w.version}) was answered with ${agent} in acked at ${w.repliedAt}, before ${agent} had applied it`);
    }
  }
  return { violations: violations.slice(0, 50), acksChecked, syncedTrue, syncedFalse };
}
