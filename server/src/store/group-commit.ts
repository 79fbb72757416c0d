import type { FactStore, WriteInput, WriteOutcome } from './fact-store.js';

interface Pending {
  input: WriteInput;
  resolve: (o: WriteOutcome) => void;
  reject: (e: unknown) => void;
}

export interface GroupCommitOptions {
  /** Most writes in one store call. */
  maxWrites: number;
  /** Most ops in one store call (a group stops before the write that would pass it, unless it is the first). */
  maxOps: number;
  /** Called with the size of each group sent (metrics). */
  onGroup?: (writes: number) => void;
}

/**
 * Group commit per env: while a write script for an env is in flight, further
 * writes to it queue, and go to the store together in one `writeMany` that
 * gives each its own consecutive version. Adaptive, with no timer: a lone
 * write goes at once, so latency at low load does not grow; under load the
 * groups grow by themselves to what arrived during one store round trip.
 * Each writer still gets its own answer (or its own error).
 */
export class GroupCommit {
  private readonly queues = new Map<string, Pending[]>();

  constructor(private readonly store: FactStore, private readonly opts: GroupCommitOptions) {}

  write(env: string, input: WriteInput): Promise<WriteOutcome> {
    return this.writeAll(env, [input])[0]!;
  }

  /** Several writes queued at once, in order (a producer's batch): they travel in as few groups as fit. */
  writeAll(env: string, inputs: readonly WriteInput[]): Promise<WriteOutcome>[] {
    let queue = this.queues.get(env);
    const idle = !queue;
    if (!queue) this.queues.set(env, (queue = []));
    const answers = inputs.map((input) => new Promise<WriteOutcome>((resolve, reject) => queue.push({ input, resolve, reject })));
    if (idle) void this.drain(env);
    return answers;
  }

  /** Sends groups for `env` until its queue is empty; one store call in flight per env. */
  private async drain(env: string): Promise<void> {
    const queue = this.queues.get(env)!;
    while (queue.length > 0) {
      let ops = 0;
      let n = 0;
      while (n < queue.length && n < this.opts.maxWrites) {
        const next = queue[n]!.input.ops.length;
        if (n > 0 && ops + next > this.opts.maxOps) break;
        ops += next;
        n++;
      }
      const group = queue.splice(0, n);
      this.opts.onGroup?.(group.length);
      try {
        const results = await this.store.writeMany(env, group.map((p) => p.input));
        group.forEach((p, i) => {
          const r = results[i]!;
          if (r.ok) p.resolve(r.outcome);
          else p.reject(r.error);
        });
      } catch (e) {
        // The store refused the call as a whole (unreachable, timed out): every write of it gets that answer.
        for (const p of group) p.reject(e);
      }
    }
    this.queues.delete(env);
  }
}
