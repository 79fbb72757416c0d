import type { Logger } from 'pino';
import type { SyncStatus, WaitFor } from '@factsync/shared';
import type { AckEntry, AgentRecord, ControlEvent, SessionRegistry } from '../store/fact-store.js';
import { SyncIndex, evaluateSync } from './waiting-rules.js';
import { SummaryIndex, gate, summarize, type Summary } from './summary.js';

export interface EnvControlDeps {
  store: SessionRegistry;
  log: Logger;
  replicaId: string;
  leaseMs: number;
  /** A session of this replica lost its agent id to a newer one (close it with 4409). */
  onReplaced: (env: string, agentId: string, session: string) => void;
}

/** An agent whose current session is (or last was) on this replica. */
interface LocalAgent {
  session: string;
  since: number;
  applied: number;
  live: boolean;
  /** After an unclean end it stays awaited until this time (its lease), unless it joins elsewhere. */
  lingerUntil: number;
}

interface Waiter {
  version: number;
  waitFor: WaitFor;
  resolve: (s: SyncStatus) => void;
}

/**
 * The control plane of one env on one replica (invariant 8). It holds this
 * replica's agents exactly, applying their acks as they arrive, and the other
 * replicas' compact summaries. Once per tick it writes the new acks to the
 * store and publishes its own summary in the same script; waiters are checked
 * against the summaries (cheap, O(replicas)) and, when those say a version may
 * be synced, judged by one read of the store's registry, which is what the
 * answer's ids come from. A periodic store read catches what summaries cannot
 * see (a crashed replica's agents whose leases run out).
 */
/**
 * Three small machines, changed only by setState: the lifecycle (`unseeded`:
 * the other replicas' summaries are not seeded from the store yet, so a gate
 * may miss a replica not heard from; `seeded`; `closed`), the flush of acks and
 * the summary (`idle` → `scheduled` for the next tick → `running`), and the
 * registry check (`running`, `again` when triggered meanwhile: one more run).
 */
interface ControlState {
  lifecycle: 'unseeded' | 'seeded' | 'closed';
  flush: 'idle' | 'scheduled' | 'running';
  check: 'idle' | 'running' | 'again';
}

export class EnvControl {
  private readonly local = new Map<string, LocalAgent>();
  private readonly remote = new Map<string, Summary & { at: number }>();
  readonly waiters = new Set<Waiter>();
  private readonly pendingAcks = new Map<string, AckEntry>();
  /** The summary changed since it was last published. */
  private summaryDirty = false;
  private state: ControlState = { lifecycle: 'unseeded', flush: 'idle', check: 'idle' };
  private lastRecords: AgentRecord[] | undefined;
  private lastPublishedMs = 0;
  /** The summary of `local`, kept per change; lingering agents leave it when their lease runs out (`nextExpiry`). */
  private readonly index = new SummaryIndex();
  private nextExpiry = Number.MAX_SAFE_INTEGER;
  unsubscribe: (() => Promise<void>) | undefined;

  constructor(readonly env: string, private readonly d: EnvControlDeps) {}

  /** The one place the state changes; a closed control stays closed. */
  private setState(next: Partial<ControlState>): void {
    if (this.state.lifecycle === 'closed' && next.lifecycle !== undefined && next.lifecycle !== 'closed') return;
    this.state = { ...this.state, ...next };
  }

  private get closed(): boolean {
    return this.state.lifecycle === 'closed';
  }

  get idle(): boolean {
    return this.local.size === 0 && this.waiters.size === 0;
  }

  // ---- this replica's sessions ----------------------------------------------

  opened(id: string, session: string, since: number, applied: number): void {
    const cur = this.local.get(id);
    if (cur && cur.session !== session && cur.live) this.d.onReplaced(this.env, id, cur.session);
    this.drop(id);
    this.local.set(id, { session, since, applied, live: true, lingerUntil: 0 });
    this.index.add(since, applied);
    this.touch();
  }

  private drop(id: string): void {
    const cur = this.local.get(id);
    if (!cur) return;
    this.local.delete(id);
    this.index.remove(cur.since, cur.applied);
  }

  acked(id: string, session: string, version: number, chainId: string): void {
    const cur = this.local.get(id);
    if (!cur || cur.session !== session || version <= cur.applied) return;
    this.index.remove(cur.since, cur.applied);
    this.index.add(cur.since, version);
    cur.applied = version;
    this.pendingAcks.set(id, { id, session, version, chainId });
    this.touch();
  }

  ended(id: string, session: string, graceful: boolean): void {
    const cur = this.local.get(id);
    if (!cur || cur.session !== session) return;
    if (graceful) this.drop(id);
    else {
      cur.live = false;
      cur.lingerUntil = Date.now() + this.d.leaseMs;
      this.nextExpiry = Math.min(this.nextExpiry, cur.lingerUntil);
    }
    this.pendingAcks.delete(id);
    this.touch();
  }

  /** A session of ours lost its agent id to a newer one: it neither lingers nor counts here any more. */
  lost(id: string, session: string): void {
    const cur = this.local.get(id);
    if (cur?.session === session) this.drop(id);
    this.touch();
  }

  // ---- other replicas -------------------------------------------------------

  onControl(ev: ControlEvent): void {
    if (this.closed || ev.replica === this.d.replicaId) return;
    if (ev.type === 'join') {
      const cur = this.local.get(ev.agentId);
      if (!cur || cur.session === ev.session) return;
      if (cur.live) this.d.onReplaced(this.env, ev.agentId, cur.session);
      this.drop(ev.agentId);
      this.touch();
      return;
    }
    this.remote.set(ev.replica, { floor: ev.floor, histogram: ev.histogram, max: ev.max, at: Date.now() });
    this.evaluate();
  }

  /** The event channel was re-established: summaries may be stale; the next store read reseeds them. */
  reset(): void {
    this.remote.clear();
    this.setState({ lifecycle: 'unseeded' });
    void this.storeCheck();
  }

  private summary(): Summary {
    const now = Date.now();
    if (now >= this.nextExpiry) {
      // A lingering agent's lease ran out: it is no longer awaited (rare; the only full pass).
      this.nextExpiry = Number.MAX_SAFE_INTEGER;
      for (const [id, a] of this.local) {
        if (a.live) continue;
        if (a.lingerUntil <= now) this.drop(id);
        else this.nextExpiry = Math.min(this.nextExpiry, a.lingerUntil);
      }
    }
    return this.index.summary();
  }

  /** Something local changed: one flush per tick writes acks and the summary, then re-checks waiters. */
  private touch(): void {
    this.summaryDirty = true;
    if (this.state.flush !== 'idle') return;
    this.setState({ flush: 'scheduled' });
    setImmediate(() => {
      this.setState({ flush: 'idle' });
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.state.flush === 'running' || this.closed) return;
    this.setState({ flush: 'running' });
    const acks = [...this.pendingAcks.values()];
    this.pendingAcks.clear();
    const dirty = this.summaryDirty;
    this.summaryDirty = false;
    try {
      const s = this.summary();
      await this.d.store.recordAcks(this.env, acks, dirty ? { type: 'summary', replica: this.d.replicaId, ...s } : undefined);
      if (dirty) this.lastPublishedMs = Date.now();
    } catch (e) {
      this.d.log.warn({ env: this.env, acks: acks.length, err: (e as Error).message }, 'recording acks failed; retrying');
      // Keep them (the highest per agent) so an ack is never forgotten while the store is away.
      for (const a of acks) if (a.version > (this.pendingAcks.get(a.id)?.version ?? -1)) this.pendingAcks.set(a.id, a);
      this.summaryDirty ||= dirty;
      this.setState({ flush: 'idle' });
      if (!this.closed) setTimeout(() => this.touch(), 500).unref();
      return;
    }
    this.setState({ flush: 'idle' });
    if (this.pendingAcks.size > 0 || this.summaryDirty) this.touch();
    this.evaluate();
  }

  /** Heartbeat: republish the summary (others drop silent replicas), expire lingering agents, re-judge waiters. */
  heartbeat(): void {
    const now = Date.now();
    // A replica silent for a lease is gone; its agents' leases ran out meanwhile, or they joined elsewhere.
    for (const [r, s] of this.remote) if (now - s.at > this.d.leaseMs) this.remote.delete(r);
    if (this.local.size > 0 && now - this.lastPublishedMs > this.d.leaseMs / 3) this.touch();
    if (this.waiters.size > 0) void this.storeCheck();
  }

  // ---- waiting --------------------------------------------------------------

  /** Current status now (timeoutMs 0), or once synced, or when the timeout (null = none) passes. */
  async wait(version: number, waitFor: WaitFor, timeoutMs: number | null, signal?: AbortSignal): Promise<SyncStatus> {
    // Read the registry now only when the answer is due now or may already be synced; otherwise the waiter
    // is judged when the summaries say so (a write's own version is almost never synced at once).
    if (timeoutMs === 0 || this.closed || signal?.aborted || this.state.lifecycle === 'unseeded' || this.mayBeSynced(version, waitFor)) {
      const now = evaluateSync(await this.readRecords(), version, waitFor);
      if (now.synced || timeoutMs === 0 || this.closed || signal?.aborted) return now;
    }
    return new Promise<SyncStatus>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        version, waitFor,
        resolve: (s) => {
          if (timer) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          this.waiters.delete(waiter);
          resolve(s);
        },
      };
      const settleNow = () => {
        this.waiters.delete(waiter);
        this.readRecords().then(
          (r) => waiter.resolve(evaluateSync(r, version, waitFor)),
          () => waiter.resolve(evaluateSync(this.lastRecords ?? [], version, waitFor)),
        );
      };
      const onAbort = () => settleNow();
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== null) timer = setTimeout(settleNow, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private evaluate(): void {
    if (this.waiters.size === 0) return;
    for (const w of this.waiters) {
      if (this.mayBeSynced(w.version, w.waitFor)) {
        void this.storeCheck();
        return;
      }
    }
  }

  /** The summaries (this replica's exact one and the others') say `version` may be synced. */
  private mayBeSynced(version: number, waitFor: WaitFor): boolean {
    const summaries: Summary[] = [this.summary(), ...this.remote.values()];
    return gate(summaries, version, waitFor, (id) => {
      const a = this.local.get(id);
      return a ? a.applied >= version : undefined;
    });
  }

  /** One registry read judges every waiter; reads never overlap, and a trigger during one runs one more. */
  private async storeCheck(): Promise<void> {
    if (this.state.check !== 'idle') {
      this.setState({ check: 'again' });
      return;
    }
    this.setState({ check: 'running' });
    try {
      const index = new SyncIndex(await this.readRecords());
      for (const w of [...this.waiters]) if (index.isSynced(w.version, w.waitFor)) w.resolve(index.status(w.version, w.waitFor));
    } catch (e) {
      this.d.log.debug({ env: this.env, err: (e as Error).message }, 'sync check failed; retrying on the next trigger');
    } finally {
      const again = (this.state as ControlState).check === 'again';
      this.setState({ check: 'idle' });
      if (again) void this.storeCheck();
    }
  }

  private async readRecords(): Promise<AgentRecord[]> {
    const records = await this.d.store.syncStates(this.env);
    this.lastRecords = records;
    // Replicas not heard from yet get a summary built from the store, until they speak for themselves.
    const byReplica = new Map<string, AgentRecord[]>();
    for (const r of records) {
      if (!r.present || !r.replica || r.replica === this.d.replicaId || this.remote.has(r.replica)) continue;
      let list = byReplica.get(r.replica);
      if (!list) byReplica.set(r.replica, (list = []));
      list.push(r);
    }
    for (const [replica, list] of byReplica) this.remote.set(replica, { ...summarize(list), at: Date.now() });
    this.setState({ lifecycle: 'seeded' });
    return records;
  }

  /** Write what acks are pending (best effort), then answer every waiter with its current status. */
  async close(): Promise<void> {
    const acks = [...this.pendingAcks.values()];
    if (acks.length > 0) await this.d.store.recordAcks(this.env, acks).catch(() => undefined);
    this.setState({ lifecycle: 'closed' });
    const records = await this.readRecords().catch(() => this.lastRecords ?? []);
    for (const w of [...this.waiters]) w.resolve(evaluateSync(records, w.version, w.waitFor));
    await this.unsubscribe?.().catch(() => undefined);
  }
}
