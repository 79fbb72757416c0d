/**
 * One factor for every limit in the tests (`TEST_TIME_SCALE`, default 1): on a
 * machine twice as slow, set 2. Every wait is for an event; the limit is only
 * how long to wait before calling a missing event a failure.
 */
export const TIME_SCALE = Math.max(1, Number(process.env.TEST_TIME_SCALE ?? 1) || 1);
export const scaled = (ms: number): number => Math.round(ms * TIME_SCALE);

/** Polls `check` until it returns a truthy value; fails with `what` after `timeoutMs` (scaled). */
export async function waitUntil<T>(check: () => T | Promise<T>, what: string, timeoutMs = 30_000, everyMs = 25): Promise<NonNullable<T>> {
  const limit = scaled(timeoutMs);
  const deadline = Date.now() + limit;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${limit} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `npm run soak` multiplies the work of the fault scenarios by SOAK_SCALE (default 1 in CI). */
export const SOAK_SCALE = Math.max(1, Number(process.env.SOAK_SCALE ?? 1) || 1);

/** `promise`, or a failure naming `what` (and `detail()`, e.g. a child's stderr) after `timeoutMs` (scaled). */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = 30_000, detail?: () => string): Promise<T> {
  const limit = scaled(timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${limit} ms waiting for ${what}${detail ? `:\n${detail()}` : ''}`)), limit);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
