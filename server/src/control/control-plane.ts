import type { Logger } from 'pino';
import type { SyncStatus, WaitFor } from '@factsync/shared';
import type { EventBus, SessionRegistry } from '../store/fact-store.js';
import { EnvControl } from './env-control.js';

export interface ControlPlaneOptions {
  replicaId: string;
  leaseMs: number;
  /** Heartbeat period: summaries are republished and waiters re-judged from the store this often. */
  refreshMs: number;
  /** An env with no agents and no waiters here is dropped after this long. */
  lingerMs: number;
  onReplaced: (env: string, agentId: string, session: string) => void;
}

interface Entry {
  control: EnvControl;
  ready: Promise<void>;
  lingerTimer: NodeJS.Timeout | undefined;
}

/**
 * This replica's part of the control plane (invariant 8): one EnvControl per
 * env that has sessions or waiters here, subscribed to that env's control
 * channel while it lives.
 */
export class ControlPlane {
  private readonly envs = new Map<string, Entry>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly store: SessionRegistry & EventBus, private readonly log: Logger, private readonly opts: ControlPlaneOptions) {
    this.timer = setInterval(() => this.heartbeat(), opts.refreshMs);
    this.timer.unref();
    store.onEventsReset(() => {
      for (const e of this.envs.values()) e.control.reset();
    });
  }

  /** The env's control, subscribed; callers await `ready` before relying on other replicas' events. */
  acquire(env: string): Entry {
    let e = this.envs.get(env);
    if (e) {
      if (e.lingerTimer) clearTimeout(e.lingerTimer);
      e.lingerTimer = undefined;
      return e;
    }
    const control = new EnvControl(env, { store: this.store, log: this.log, replicaId: this.opts.replicaId, leaseMs: this.opts.leaseMs, onReplaced: this.opts.onReplaced });
    const entry: Entry = { control, ready: Promise.resolve(), lingerTimer: undefined };
    entry.ready = this.store.subscribeControl(env, (ev) => control.onControl(ev)).then((unsub) => {
      control.unsubscribe = unsub;
    });
    entry.ready.catch((err: Error) => {
      this.log.warn({ env, err: err.message }, 'control subscription failed');
      if (this.envs.get(env) === entry) this.envs.delete(env);
    });
    this.envs.set(env, entry);
    return entry;
  }

  async wait(env: string, version: number, waitFor: WaitFor, timeoutMs: number | null, signal?: AbortSignal): Promise<SyncStatus> {
    const e = this.acquire(env);
    try {
      await e.ready;
      return await e.control.wait(version, waitFor, timeoutMs, signal);
    } finally {
      this.maybeRelease(env, e);
    }
  }

  /** Called by sessions when they end: drops envs that have nothing left here, after a while. */
  maybeRelease(env: string, e = this.envs.get(env)): void {
    if (!e || !e.control.idle || e.lingerTimer || this.closed) return;
    e.lingerTimer = setTimeout(() => {
      e.lingerTimer = undefined;
      if (!e.control.idle || this.envs.get(env) !== e) return;
      this.envs.delete(env);
      void e.control.close();
    }, this.opts.lingerMs);
    e.lingerTimer.unref();
  }

  private heartbeat(): void {
    for (const [env, e] of this.envs) {
      e.control.heartbeat();
      this.maybeRelease(env, e);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const entries = [...this.envs.values()];
    this.envs.clear();
    await Promise.allSettled(entries.map(async (e) => {
      if (e.lingerTimer) clearTimeout(e.lingerTimer);
      await e.control.close();
    }));
  }
}
