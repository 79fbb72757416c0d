import { SLICE_MS } from './decide/work-budget.js';

/**
 * Lets a long read yield the event loop without seeing two versions. A bulk
 * check or a listing that runs past its time slice holds the gate and yields;
 * changes that arrive meanwhile wait here, in order, and are applied the
 * moment the last hold ends. Every answer is then still decided at one
 * version, and no request holds the loop for more than a slice.
 *
 * A hold never starves applies: a request that wants to hold while changes
 * wait lets them go first (`hold` waits its turn).
 */
export class ApplyGate {
  private holds = 0;
  private readonly waiting: (() => void)[] = [];

  /** Runs `apply` now, or once no read holds the gate (in arrival order). */
  run(apply: () => void): void {
    if (this.holds === 0 && this.waiting.length === 0) return apply();
    this.waiting.push(apply);
  }

  /** Resolves when an apply may run now; the caller applies synchronously in its continuation. */
  turn(): Promise<void> {
    return new Promise((resolve) => this.run(resolve));
  }

  get held(): boolean {
    return this.holds > 0;
  }

  /**
   * Holds the gate for a read that is about to yield; the returned release is
   * idempotent. Take it before the first yield, after deciding synchronously:
   * nothing was applied in between.
   */
  hold(): () => void {
    this.holds++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.holds === 0) this.drain();
    };
  }

  /** Resolves once changes waiting now are applied: a new read starts from the newest state. */
  async settle(): Promise<void> {
    if (this.waiting.length > 0) await this.turn();
  }

  private drain(): void {
    while (this.holds === 0 && this.waiting.length > 0) this.waiting.shift()!();
  }
}

/** Yields to the event loop (other requests, timers, sockets), not only to other microtasks. */
const yieldLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs a read that may take longer than a slice (SLICE_MS): `pause()` yields
 * the event loop once the slice is over, holding the gate from the first
 * yield to the end, so the whole read sees one version. Changes already
 * waiting go first.
 */
export async function readAtOneVersion<T>(gate: ApplyGate, read: (pause: () => Promise<void>) => Promise<T>, sliceMs = SLICE_MS): Promise<T> {
  await gate.settle();
  let release: (() => void) | undefined;
  let sliceEnd = performance.now() + sliceMs;
  const pause = async (): Promise<void> => {
    if (performance.now() <= sliceEnd) return;
    release ??= gate.hold();
    await yieldLoop();
    sliceEnd = performance.now() + sliceMs;
  };
  try {
    return await read(pause);
  } finally {
    release?.();
  }
}
