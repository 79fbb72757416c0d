import { nanoid } from 'nanoid';
import {
  FactsyncError, GENESIS_ID, PRODUCER_WINDOW, chainId, decodeControlEvent, decodeDoorbell, encodeControlEvent, encodeDoorbell, factField, idOfChangeJson, recordsPrior, sha1Hex,
  positionAfter, splitFactField, type AgentInfo,
} from '@factsync/shared';
import { toAgentRecords } from './agent-records.js';
import { idempotencyKeyReused, producerSeqTooOld } from './idempotency.js';
import { oneWrite } from './fact-store.js';
import type { GroupCommit, Journal, JournaledState } from './journal.js';
import { ScanRegistry } from './memory-scans.js';
import type {
  AckEntry, AgentRecord, ChangesPage, ControlEvent, ControlListener, EnvHead, EnvListener, FactStore, RawChange, Resume,
  ResumeRequest, ResumeVerdict, SessionOpen, SessionOpened, Snapshot, SourceRecord, StateScan, WriteInput, WriteOutcome, WriteResult,
} from './fact-store.js';

export interface MemoryStoreOptions {
  logRetention: number;
  idempotencyTtlSeconds: number;
  inlineChangeBytes: number;
  /** Records of agents that left are dropped this long after they left (default a day). */
  agentRecordTtlMs?: number;
  now?: () => number;
  /** Makes every group commit, epoch and usage record durable before it is answered (the embedded store on disk). */
  journal?: Journal;
  /** What the journal kept, to start from. */
  initial?: JournaledState;
  kind?: 'memory' | 'embedded';
}

interface EnvState {
  name: string;
  version: number;
  epoch: string | null;
  id: string;
  log: RawChange[];
  state: Map<string, string>;
  idem: Map<string, { version: number; hash: string; expiresMs: number }>;
  /** Per producer: its highest sequence number and the last PRODUCER_WINDOW with their versions (expiring as a whole). */
  producers: Map<string, { max: number; seqs: Map<number, { version: number; hash: string }>; expiresMs: number }>;
  /** Source name → its recorded position (X-Source). */
  sources: Map<string, SourceRecord>;
  sess: Map<string, string>;
  info: Map<string, AgentInfo>;
  applied: Map<string, { v: number; id: string }>;
  leases: Map<string, number>;
  gone: Map<string, number>;
}


/**
 * The embedded store: one process, no Redis. Every method runs synchronously
 * inside one call, which gives it the same atomicity as the Redis scripts, and
 * events travel through the same wire encoding as Redis pub/sub, delivered
 * asynchronously like a real doorbell. It mirrors redis-scripts.ts rule for rule.
 */

export function createMemoryStore(opts: MemoryStoreOptions): FactStore {
  const now = opts.now ?? Date.now;
  const envs = new Map<string, EnvState>();
  const { journal } = opts;
  /** Set when the journal failed: memory may hold what the disk does not, so nothing more is answered. */
  let broken: FactsyncError | undefined;
  const listeners = new Map<string, Set<EnvListener>>();
  const controlListeners = new Map<string, Set<ControlListener>>();
  /** env → month → user keys; apart from the envs, so reading usage creates nothing. */
  const usage = opts.initial?.usage ?? new Map<string, Map<string, Set<string>>>();
  let closed = false;
  const scans = new ScanRegistry();

  const envOf = (env: string): EnvState => {
    let s = envs.get(env);
    if (!s) {
      s = {
        name: env, version: 0, epoch: null, id: GENESIS_ID, log: [], state: new Map(), idem: new Map(), producers: new Map(), sources: new Map(),
        sess: new Map(), info: new Map(), applied: new Map(), leases: new Map(), gone: new Map(),
      };
      envs.set(env, s);
    }
    return s;
  };
  for (const [env, j] of opts.initial?.envs ?? []) {
    envs.set(env, {
      name: env, version: j.version, epoch: j.epoch, id: j.id, log: j.log, state: j.state, idem: j.idempotency, producers: j.producers, sources: j.sources,
      sess: new Map(), info: new Map(), applied: new Map(), leases: new Map(), gone: new Map(),
    });
  }
  /** Runs a journal step; a failure stops the store (a restart reloads what the disk has). */
  const durably = (step: () => void) => {
    if (broken) throw broken;
    try {
      step();
    } catch (e) {
      broken = new FactsyncError('store_unavailable', `the embedded store could not write to its data directory (${(e as Error).message}); restart the server once the disk is fixed`);
      throw broken;
    }
  };
  const epochOf = (s: EnvState): string => {
    if (s.epoch === null) {
      const epoch = nanoid(12);
      if (journal) durably(() => journal.epoch(s.name, epoch));
      s.epoch = epoch;
    }
    return s.epoch;
  };

  /** The same group commit as Redis's WRITE script: in order, each its version or replay, one doorbell. */
  function writeMany(env: string, inputs: readonly WriteInput[]): WriteResult[] {
    const s = envOf(env);
    const t = now();
    const epoch = epochOf(s);
    if (broken) throw broken;
    const results: WriteResult[] = [];
    const written: string[] = [];
    const changes: RawChange[] = [];
    // What the journal must keep of this group (only when there is one).
    const facts = new Map<string, string | null>();
    const producersTouched = new Map<string, NonNullable<ReturnType<typeof s.producers.get>>>();
    const keysTouched = new Map<string, NonNullable<ReturnType<typeof s.idem.get>>>();
    const sourcesTouched = new Map<string, SourceRecord>();
    const ts = new Date(t).toISOString();
    const recordSource = (name: string, position: string, version: number) => {
      const rec = { name, position, version, updatedAt: ts };
      s.sources.set(name, rec);
      if (journal) sourcesTouched.set(name, rec);
    };
    for (const input of inputs) {
      // A source's position is applied once: not after the recorded one, nothing happens (the WRITE script's rule).
      const src = input.source;
      const recorded = src ? s.sources.get(src.name) : undefined;
      if (src && recorded && !positionAfter(src.position, recorded.position)) {
        results.push({ ok: true, outcome: { version: recorded.version, epoch, duplicate: true } });
        continue;
      }
      if (src && input.ops.length === 0) {
        recordSource(src.name, src.position, s.version);
        results.push({ ok: true, outcome: { version: s.version, epoch, duplicate: false, positionOnly: true } });
        continue;
      }
      const opsJson = JSON.stringify(input.ops);
      const hash = input.idempotencyKey !== undefined || input.producer ? sha1Hex(opsJson) : '';
      let producer = input.producer ? s.producers.get(input.producer.id) : undefined;
      if (producer && producer.expiresMs <= t) producer = undefined;
      const key = input.idempotencyKey !== undefined ? s.idem.get(input.idempotencyKey) : undefined;
      const prev = input.producer ? producer?.seqs.get(input.producer.seq) : key && key.expiresMs > t ? key : undefined;
      if (prev) {
        results.push(prev.hash !== hash
          ? { ok: false, error: idempotencyKeyReused(input, prev.version) }
          : { ok: true, outcome: { version: prev.version, epoch, duplicate: true } });
        continue;
      }
      if (input.producer && producer && input.producer.seq <= producer.max - PRODUCER_WINDOW) {
        results.push({ ok: false, error: producerSeqTooOld(input.producer) });
        continue;
      }
      const v = ++s.version;
      s.id = chainId(s.id, v, input.ts, opsJson);
      const was: string[] = [];
      for (let k = 0; k < input.ops.length; k++) {
        const op = input.ops[k]!;
        const field = factField(op.type, op.key);
        if (recordsPrior(op.type)) {
          const old = s.state.get(field);
          if (old !== undefined) was.push(`"${k}":${priorTenantJson(old)}`);
        }
        if (op.op === 'upsert') {
          const value = JSON.stringify(op.value);
          s.state.set(field, value);
          if (journal) facts.set(field, value);
        } else {
          s.state.delete(field);
          if (journal) facts.set(field, null);
        }
      }
      const json = `{"version":${v},"id":"${s.id}","ts":"${input.ts}",${was.length > 0 ? `"was":{${was.join(',')}},` : ''}"ops":${opsJson}}`;
      s.log.push({ version: v, json });
      if (journal) changes.push({ version: v, json });
      if (input.producer) {
        // The same window as the Redis script: the producer's last PRODUCER_WINDOW sequence numbers.
        if (!producer) s.producers.set(input.producer.id, (producer = { max: 0, seqs: new Map(), expiresMs: 0 }));
        producer.seqs.set(input.producer.seq, { version: v, hash });
        if (input.producer.seq > producer.max) {
          producer.max = input.producer.seq;
          for (const q of producer.seqs.keys()) if (q <= producer.max - PRODUCER_WINDOW) producer.seqs.delete(q);
        }
        producer.expiresMs = t + opts.idempotencyTtlSeconds * 1000;
        if (journal) producersTouched.set(input.producer.id, producer);
      } else if (input.idempotencyKey !== undefined) {
        const entry = { version: v, hash, expiresMs: t + opts.idempotencyTtlSeconds * 1000 };
        s.idem.set(input.idempotencyKey, entry);
        if (journal) keysTouched.set(input.idempotencyKey, entry);
        // Redis expires these keys by itself; here, sweep now and then so a long-running dev server does not grow.
        if (s.idem.size % 1024 === 0) for (const [k, e] of s.idem) if (e.expiresMs <= t) s.idem.delete(k);
      }
      if (src) recordSource(src.name, src.position, v);
      written.push(json);
      results.push({ ok: true, outcome: { version: v, epoch, duplicate: false } });
    }
    const excess = s.log.length - opts.logRetention;
    if (excess > 0) s.log.splice(0, excess);
    if (journal && (changes.length > 0 || sourcesTouched.size > 0)) {
      const commit: GroupCommit = {
        epoch, version: s.version, id: s.id, changes, facts, trimmedThrough: (s.log[0]?.version ?? s.version + 1) - 1,
        idempotency: keysTouched, producers: producersTouched, sources: sourcesTouched,
      };
      durably(() => journal.commit(env, commit));
    }
    // One doorbell for the group, as the Redis script rings it: inline while the changes fit the budget.
    const size = written.reduce((n, c) => n + c.length + 1, 0);
    const at = { version: s.version, epoch };
    if (written.length === 1) publish(env, encodeDoorbell(size - 1 <= opts.inlineChangeBytes ? { ...at, change: written[0] } : at));
    else if (written.length > 1) publish(env, encodeDoorbell(size <= opts.inlineChangeBytes ? { ...at, changes: written } : at));
    return results;
  }


  const deliver = <T>(set: Set<(e: T) => void> | undefined, ev: T) => {
    if (!set || set.size === 0) return;
    const targets = [...set];
    queueMicrotask(() => {
      for (const l of targets) l(ev);
    });
  };
  const publish = (env: string, message: string) => {
    const parsed = decodeDoorbell(message);
    if (!parsed.ok) throw new Error(`memory store produced a bad event: ${parsed.error}`);
    deliver(listeners.get(env), parsed.value);
  };
  const publishControl = (env: string, e: ControlEvent) => {
    const parsed = decodeControlEvent(encodeControlEvent(e));
    if (!parsed.ok) throw new Error(`memory store produced a bad control event: ${parsed.error}`);
    deliver(controlListeners.get(env), parsed.value);
  };

  /** Index of the first log entry with version > after (binary search: versions are dense and sorted). */
  const firstAfter = (log: RawChange[], after: number): number => {
    let lo = 0, hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (log[mid]!.version <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  /** The chain id at v ('' at 0), null when the log no longer holds it. */
  const idAt = (s: EnvState, v: number): string | null => {
    if (v === 0) return GENESIS_ID;
    if (v === s.version) return s.id;
    const i = firstAfter(s.log, v - 1);
    const c = s.log[i];
    return c && c.version === v ? idOfChangeJson(c.json) ?? '' : null;
  };
  const verdictOf = (s: EnvState, r: ResumeRequest): ResumeVerdict => {
    const epoch = epochOf(s);
    if ((r.epoch ?? '') !== epoch) return r.applied === 0 && !r.epoch ? 'new' : 'other_epoch';
    if (r.applied > s.version) return 'ahead';
    if (r.applied === 0 || !r.appliedId) return 'resume';
    const at = idAt(s, r.applied);
    if (at === null) return 'unverifiable';
    return at === r.appliedId ? 'resume' : 'forked';
  };
  /** `gone` is in the order agents left (endSession re-inserts), so the expired ones come first: stop at the first that is not. */
  const purge = (s: EnvState, t: number) => {
    let n = 0;
    for (const [id, leftAt] of s.gone) {
      if (leftAt > t - (opts.agentRecordTtlMs ?? 24 * 3600_000) || n++ >= 64) break;
      s.sess.delete(id); s.info.delete(id); s.applied.delete(id); s.leases.delete(id); s.gone.delete(id);
    }
  };
  const listen = <L>(map: Map<string, Set<L>>, env: string, listener: L) => {
    let set = map.get(env);
    if (!set) map.set(env, (set = new Set()));
    set.add(listener);
    return async () => {
      map.get(env)?.delete(listener);
    };
  };

  /** The listing and the waiting rules read the same records here (no JSON to skip). */
  async function agents(env: string): Promise<AgentRecord[]> {
    const s = envs.get(env);
    if (!s) return [];
    const t = now();
    purge(s, t);
    const applied = new Map<string, number>();
    for (const [id, a] of s.applied) {
      const at = a.v > 0 && a.id !== '' ? idAt(s, a.v) : undefined;
      const valid = a.v <= s.version && (at === undefined || at === null || at === a.id);
      applied.set(id, valid ? a.v : 0);
    }
    return toAgentRecords(t, s.sess, s.info, applied, s.leases);
  }

  return {
    kind: opts.kind ?? 'memory',

    writeMany: async (env: string, inputs: readonly WriteInput[]) => writeMany(env, inputs),

    async write(env: string, input: WriteInput): Promise<WriteOutcome> {
      return oneWrite(writeMany(env, [input]));
    },

    async head(env: string): Promise<EnvHead> {
      const s = envs.get(env);
      return { version: s?.version ?? 0, epoch: s?.epoch ?? null, id: s?.id ?? GENESIS_ID };
    },

    async sources(env: string): Promise<SourceRecord[]> {
      return [...(envs.get(env)?.sources.values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1));
    },

    async headWithCount(env: string): Promise<EnvHead & { facts: number }> {
      const s = envs.get(env);
      return { version: s?.version ?? 0, epoch: s?.epoch ?? null, id: s?.id ?? GENESIS_ID, facts: s?.state.size ?? 0 };
    },

    async ensureEpoch(env: string): Promise<EnvHead> {
      const s = envOf(env);
      return { version: s.version, epoch: epochOf(s), id: s.id };
    },

    async changes(env: string, after: number, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<ChangesPage> {
      const s = envs.get(env);
      const head = s?.version ?? 0;
      const epoch = s?.epoch ?? null;
      if (!s || after >= head) return { truncated: false, head, epoch, changes: [] };
      const i = firstAfter(s.log, after);
      const changes: RawChange[] = [];
      let bytes = 0;
      for (let j = i; j < s.log.length && changes.length < limit; j++) {
        const c = s.log[j]!;
        if (changes.length > 0 && bytes + c.json.length > maxBytes) break;
        changes.push(c);
        bytes += c.json.length;
      }
      if (changes.length === 0 || changes[0]!.version !== after + 1) return { truncated: true, head, epoch };
      return { truncated: false, head, epoch, changes };
    },

    async snapshot(env: string): Promise<Snapshot> {
      const s = envs.get(env);
      if (!s) return { version: 0, epoch: null, id: GENESIS_ID, facts: [] };
      const facts = [...s.state].map(([field, valueJson]) => ({ ...splitFactField(field), valueJson }));
      return { version: s.version, epoch: s.epoch, id: s.id, facts };
    },

    async scanState(env: string, cursor: string, count: number, type?: string): Promise<StateScan> {
      const s = envs.get(env);
      return s ? scans.step(s.state, cursor, count, type) : { cursor: '0', facts: [] };
    },

    async fact(env: string, type: string, key: string): Promise<EnvHead & { valueJson: string | null }> {
      const s = envs.get(env);
      return { version: s?.version ?? 0, epoch: s?.epoch ?? null, id: s?.id ?? GENESIS_ID, valueJson: s?.state.get(factField(type, key)) ?? null };
    },

    async resume(env: string, r: ResumeRequest): Promise<Resume> {
      const s = envs.get(env);
      if (!s || s.epoch === null) {
        // Readers cannot create envs (invariant 10): judged against an empty env that stays missing.
        const verdict: ResumeVerdict = r.epoch ? 'other_epoch' : r.applied > 0 ? 'ahead' : 'resume';
        return { version: 0, epoch: null, id: GENESIS_ID, verdict };
      }
      const verdict = verdictOf(s, r);
      return { version: s.version, epoch: epochOf(s), id: s.id, verdict };
    },

    async openSession(env: string, o: SessionOpen): Promise<SessionOpened> {
      const s = envOf(env);
      const t = now();
      const verdict = verdictOf(s, o.resume);
      const prevSession = s.sess.get(o.id);
      const prev = s.info.get(o.id);
      const present = (s.leases.get(o.id) ?? 0) >= t;
      let since = s.version;
      let applied = 0;
      let appliedId = '';
      if (verdict === 'resume') {
        since = applied = o.resume.applied;
        appliedId = o.resume.appliedId ?? '';
      } else if (present && prev) since = Math.min(prev.since, s.version);
      const replaced = prevSession !== undefined && prevSession !== o.session && prev?.connected === true && present
        ? { session: prevSession, replica: prev.replica ?? '', addr: prev.addr } : null;
      s.sess.set(o.id, o.session);
      s.applied.set(o.id, { v: applied, id: appliedId });
      s.info.set(o.id, { replica: o.replica, since, connected: true, openedMs: t, seenMs: t, leaseMs: o.leaseMs, addr: o.addr });
      s.leases.set(o.id, t + o.leaseMs);
      s.gone.delete(o.id);
      purge(s, t);
      publishControl(env, { type: 'join', agentId: o.id, session: o.session, replica: o.replica });
      return { version: s.version, epoch: epochOf(s), id: s.id, verdict, since, applied, replaced };
    },

    async endSession(env: string, id: string, session: string, graceful: boolean, leaseMs: number) {
      const s = envs.get(env);
      if (!s || s.sess.get(id) !== session) return;
      const t = now();
      const info = s.info.get(id);
      if (info) s.info.set(id, { ...info, connected: false, seenMs: t });
      if (graceful) s.leases.delete(id);
      else s.leases.set(id, t + leaseMs);
      s.gone.delete(id);
      s.gone.set(id, t);
    },

    async renewSessions(env: string, sessions: readonly (readonly [string, string])[], leaseMs: number) {
      const s = envs.get(env);
      if (!s) return sessions.map(([id]) => id);
      const until = now() + leaseMs;
      const lost: string[] = [];
      for (const [id, session] of sessions) {
        if (s.sess.get(id) === session) s.leases.set(id, until);
        else lost.push(id);
      }
      return lost;
    },

    async recordAcks(env: string, acks: readonly AckEntry[], summary?: ControlEvent) {
      const s = envOf(env);
      for (const a of acks) {
        if (s.sess.get(a.id) !== a.session) continue;
        if (a.version > (s.applied.get(a.id)?.v ?? -1)) s.applied.set(a.id, { v: a.version, id: a.chainId });
      }
      if (summary) publishControl(env, summary);
    },

    async publishControl(env: string, event: ControlEvent) {
      publishControl(env, event);
    },

    async recordUsage(env: string, month: string, users: readonly string[]) {
      let months = usage.get(env);
      if (!months) usage.set(env, (months = new Map()));
      let set = months.get(month);
      if (!set) months.set(month, (set = new Set()));
      const added = journal ? users.filter((u) => !set!.has(u)) : users;
      if (journal && added.length > 0) durably(() => journal.usage(env, month, added));
      for (const u of added) set.add(u);
    },

    async usage(env: string, month: string) {
      return usage.get(env)?.get(month)?.size ?? 0;
    },

    agents: (env: string) => agents(env),

    async syncStates(env: string): Promise<AgentRecord[]> {
      return agents(env);
    },

    async subscribe(env: string, listener: EnvListener) {
      return listen(listeners, env, listener);
    },

    async subscribeControl(env: string, listener: ControlListener) {
      return listen(controlListeners, env, listener);
    },

    onEventsReset() {
      // An in-process bus cannot lose its subscription.
    },

    async envs(limit: number) {
      return [...envs.keys()].filter((e) => envs.get(e)!.epoch !== null).sort().slice(0, limit);
    },

    async ping() {
      if (closed) throw new Error('memory store is closed');
      if (broken) throw broken;
    },

    async close() {
      if (!closed) journal?.close();
      closed = true;
      listeners.clear();
      controlListeners.clear();
    },
  };
}

/** Change.was for a stored value: the tenant it names, as JSON, or null (the WRITE script does the same in Lua). */
function priorTenantJson(valueJson: string): string {
  try {
    const t = (JSON.parse(valueJson) as { tenant?: unknown } | null)?.tenant;
    return typeof t === 'string' ? JSON.stringify(t) : 'null';
  } catch {
    return 'null';
  }
}
