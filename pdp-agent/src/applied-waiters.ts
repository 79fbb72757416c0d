/** Where the local state stands: versions mean something only within their epoch (invariant 5). */
export interface Position {
  version: number;
  epoch: string | null;
}

/** What a caller waits for: `version` of `epoch` (null: of whichever epoch the agent holds). */
export interface Target {
  version: number;
  epoch: string | null;
}

/** True when the state at `at` holds `target`: the same epoch, and at least its version. */
export const reached = (at: Position, target: Target): boolean =>
  (target.epoch === null || target.epoch === at.epoch) && at.version >= target.version;

interface Waiter {
  version: number;
  resolve: (ok: boolean) => void;
}

/**
 * Callers waiting until the agent has applied a version (read-your-writes with
 * `at_least`, and `X-Wait-For: local`). One list per epoch, each kept sorted by
 * version, so advancing releases a prefix of the current epoch's; a caller
 * waiting for another epoch's version is released only by that epoch (a
 * version of a lost epoch is never reached: it times out, which is the truth).
 */
export class AppliedWaiters {
  private readonly byEpoch = new Map<string | null, Waiter[]>();

  wait(at: Position, target: Target, timeoutMs: number | null, signal?: AbortSignal): Promise<boolean> {
    if (reached(at, target)) return Promise.resolve(true);
    if (timeoutMs === 0 || signal?.aborted) return Promise.resolve(false);
    const list = this.byEpoch.get(target.epoch) ?? [];
    this.byEpoch.set(target.epoch, list);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (ok: boolean) => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const now = this.byEpoch.get(target.epoch);
        if (now) {
          const i = now.indexOf(w);
          if (i >= 0) now.splice(i, 1);
          if (now.length === 0) this.byEpoch.delete(target.epoch);
        }
        resolve(ok);
      };
      const w: Waiter = { version: target.version, resolve: done };
      const onAbort = () => done(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== null) timer = setTimeout(() => done(false), timeoutMs);
      const i = list.findIndex((x) => x.version > target.version);
      if (i < 0) list.push(w);
      else list.splice(i, 0, w);
    });
  }

  advance(at: Position): void {
    for (const epoch of [at.epoch, null]) {
      const list = this.byEpoch.get(epoch);
      while (list && list.length > 0 && list[0]!.version <= at.version) list[0]!.resolve(true);
    }
  }

  /** Shutting down: whoever still waits has not been served (what was reached resolved already). */
  close(): void {
    for (const list of [...this.byEpoch.values()]) for (const w of [...list]) w.resolve(false);
  }
}
