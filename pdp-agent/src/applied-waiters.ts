interface Waiter {
  version: number;
  resolve: (ok: boolean) => void;
}

/**
 * Callers waiting until the agent has applied a version (read-your-writes with
 * `at_least`, and `X-Wait-For: local`). Kept sorted by version, so advancing
 * releases a prefix.
 */
export class AppliedWaiters {
  private waiters: Waiter[] = [];

  wait(applied: number, version: number, timeoutMs: number | null, signal?: AbortSignal): Promise<boolean> {
    if (applied >= version) return Promise.resolve(true);
    if (timeoutMs === 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (ok: boolean) => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(ok);
      };
      const w: Waiter = { version, resolve: done };
      const onAbort = () => done(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== null) timer = setTimeout(() => done(false), timeoutMs);
      const i = this.waiters.findIndex((x) => x.version > version);
      if (i < 0) this.waiters.push(w);
      else this.waiters.splice(i, 0, w);
    });
  }

  advance(applied: number): void {
    while (this.waiters.length > 0 && this.waiters[0]!.version <= applied) this.waiters[0]!.resolve(true);
  }

  close(applied: number): void {
    for (const w of [...this.waiters]) w.resolve(w.version <= applied);
  }
}
