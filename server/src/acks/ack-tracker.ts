import type { Logger } from 'pino';
import type { SyncStatus, WaitFor } from '@factsync/shared';
import type { EnvEvent, FactStore } from '../store/fact-store.js';
import { evaluateSync, isSynced, type AgentView } from './sync-evaluator.js';

interface Waiter {
  version: number;
  waitFor: WaitFor;
  resolve: (s: SyncStatus) => void;
  timer: NodeJS.Timeout | undefined;
}

interface View {
  env: string;
  agents: Map<string, AgentView>;
  waiters: Set<Waiter>;
  ready: Promise<void>;
  unsubscribe: (() => Promise<void>) | undefined;
  refreshTimer: NodeJS.Timeout | undefined;
  lingerTimer: NodeJS.Timeout | undefined;
  loadedAtMs: number;
}

/**
 * Waiters for "version V is synced", released on any replica. Per env it keeps a
 * view of agents (acks, presence) loaded once and then kept current by the env's
 * pub/sub events: an ack recorded on replica A reaches a waiter on replica B
 * without polling. Because pub/sub is only a doorbell, the view is also reloaded
 * from the store every `refreshMs` while someone waits, and at once after the
 * event subscription reconnects; that also drops agents whose lease expired
 * with a crashed replica.
 */
export class AckTracker {
  private readonly views = new Map<string, View>();
  private closed = false;

  constructor(
    private readonly store: FactStore,
    private readonly log: Logger,
    private readonly opts: { refreshMs: number; lingerMs: number },
  ) {
    store.onEventsReset(() => {
      for (const v of this.views.values()) void this.reload(v);
    });
  }

  /** Current status now (timeoutMs 0), or once synced, or when the timeout (null = none) passes. */
  async wait(env: string, version: number, waitFor: WaitFor, timeoutMs: number | null, signal?: AbortSignal): Promise<SyncStatus> {
    const view = this.acquire(env);
    await view.ready;
    // A view that lingered without a refresh timer may have missed a doorbell: reload it first.
    if (!view.refreshTimer && Date.now() - view.loadedAtMs > this.opts.refreshMs) await this.reload(view);
    const now = evaluateSync(view.agents, version, waitFor);
    if (now.synced || timeoutMs === 0 || this.closed || signal?.aborted) {
      this.maybeRelease(view);
      return now;
    }
    return new Promise<SyncStatus>((resolve) => {
      const waiter: Waiter = {
        version,
        waitFor,
        timer: undefined,
        resolve: (s) => {
          if (waiter.timer) clearTimeout(waiter.timer);
          signal?.removeEventListener('abort', onAbort);
          view.waiters.delete(waiter);
          this.maybeRelease(view);
          resolve(s);
        },
      };
      const settleNow = () => waiter.resolve(evaluateSync(view.agents, version, waitFor));
      const onAbort = () => settleNow();
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== null) waiter.timer = setTimeout(settleNow, timeoutMs);
      view.waiters.add(waiter);
      this.ensureRefresh(view);
    });
  }

  private acquire(env: string): View {
    let view = this.views.get(env);
    if (view) {
      if (view.lingerTimer) clearTimeout(view.lingerTimer);
      view.lingerTimer = undefined;
      return view;
    }
    const v: View = {
      env, agents: new Map(), waiters: new Set(), ready: Promise.resolve(), unsubscribe: undefined, refreshTimer: undefined, lingerTimer: undefined, loadedAtMs: 0,
    };
    v.ready = (async () => {
      // Subscribe before loading, so nothing that happens during the load is missed.
      const early: EnvEvent[] = [];
      let loaded = false;
      v.unsubscribe = await this.store.subscribe(env, (ev) => (loaded ? this.apply(v, ev) : early.push(ev)));
      await this.reload(v);
      loaded = true;
      for (const ev of early) this.apply(v, ev);
    })();
    v.ready.catch(() => {
      if (this.views.get(env) === v) this.views.delete(env);
      void v.unsubscribe?.();
    });
    this.views.set(env, v);
    return v;
  }

  private apply(view: View, ev: EnvEvent): void {
    switch (ev.t) {
      case 'change':
        return;
      case 'acks':
        for (const [id, version] of Object.entries(ev.a)) {
          const a = view.agents.get(id);
          if (a) a.applied = Math.max(a.applied, version);
          else view.agents.set(id, { applied: version, since: 0, connected: false, conn: null });
        }
        break;
      case 'presence': {
        const a = view.agents.get(ev.id);
        if (ev.connected) {
          view.agents.set(ev.id, { applied: a?.applied ?? 0, since: ev.since ?? 0, connected: true, conn: ev.conn });
        } else if (a && (a.conn === null || a.conn === ev.conn)) {
          a.connected = false;
        }
        break;
      }
    }
    this.settle(view);
  }

  private async reload(view: View): Promise<void> {
    const records = await this.store.agents(view.env);
    const next = new Map<string, AgentView>();
    for (const r of records) {
      const prev = view.agents.get(r.id);
      // Acks only grow: an event newer than this read must not be undone by it.
      next.set(r.id, { applied: Math.max(r.applied, prev?.applied ?? 0), since: r.since, connected: r.connected, conn: prev?.conn ?? null });
    }
    view.agents = next;
    view.loadedAtMs = Date.now();
    this.settle(view);
  }

  private settle(view: View): void {
    for (const w of [...view.waiters]) {
      if (isSynced(view.agents, w.version, w.waitFor)) w.resolve(evaluateSync(view.agents, w.version, w.waitFor));
    }
  }

  private ensureRefresh(view: View): void {
    if (view.refreshTimer) return;
    view.refreshTimer = setInterval(() => {
      this.reload(view).catch((e: Error) => this.log.debug({ env: view.env, err: e.message }, 'sync view reload failed'));
    }, this.opts.refreshMs);
    view.refreshTimer.unref();
  }

  private maybeRelease(view: View): void {
    if (view.waiters.size > 0) return;
    if (view.refreshTimer) clearInterval(view.refreshTimer);
    view.refreshTimer = undefined;
    if (view.lingerTimer) clearTimeout(view.lingerTimer);
    // Keep the view warm for a while: a writer that waits on every write should not resubscribe each time.
    view.lingerTimer = setTimeout(() => {
      if (view.waiters.size > 0 || this.views.get(view.env) !== view) return;
      this.views.delete(view.env);
      void view.unsubscribe?.();
    }, this.opts.lingerMs);
    view.lingerTimer.unref();
  }

  /** Answer every waiter with its current status and drop all views. */
  async close(): Promise<void> {
    this.closed = true;
    for (const view of this.views.values()) {
      for (const w of [...view.waiters]) w.resolve(evaluateSync(view.agents, w.version, w.waitFor));
      if (view.lingerTimer) clearTimeout(view.lingerTimer);
      if (view.refreshTimer) clearInterval(view.refreshTimer);
      await view.unsubscribe?.().catch(() => undefined);
    }
    this.views.clear();
  }
}
