/**
 * How much one request may make the agent's event loop do (invariant 10 on the
 * PDP). Work is counted in steps: a role looked at, a holding visited, a rule
 * tried, a condition node tested. About 150 ns each on this machine, so a
 * check's budget holds it to a few milliseconds whatever the policy, and a
 * listing page's to some tens.
 */
export const MAX_CHECK_WORK = 50_000;
/** A listing page (who may, what may, where may) ends early, with its cursor, once its candidates cost this much. */
export const MAX_PAGE_WORK = 300_000;
/** A bulk request yields to the event loop after about this long, and goes on at the same version. */
export const SLICE_MS = 10;

export class WorkBudget {
  private spent = 0;

  constructor(readonly limit: number) {}

  /** Takes `n` steps; false once the budget is spent (the caller stops). */
  spend(n: number): boolean {
    this.spent += n;
    return this.spent <= this.limit;
  }

  get exhausted(): boolean {
    return this.spent > this.limit;
  }

  get used(): number {
    return this.spent;
  }

  get left(): number {
    return Math.max(0, this.limit - this.spent);
  }
}
