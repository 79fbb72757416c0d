/**
 * How much one request may make the agent's event loop do (invariant 10 on the
 * PDP). Work is counted in steps: a role looked at, a holding visited, a rule
 * tried, a condition node tested. Measured by `npm run bench -- loop` at about
 * 0.4 µs a step under a heavy policy, so a check's budget holds it to about
 * 12 ms whatever the policy, and a listing page's to about 25 ms. A ReBAC
 * search's own limit (10,000 holdings) comes first.
 */
export const MAX_CHECK_WORK = 30_000;
/** A listing page (who may, what may, where may) ends early, with its cursor, once its candidates cost this much. */
export const MAX_PAGE_WORK = 60_000;
/** What deciding one candidate of a listing costs besides its steps (building its attributes, the lookups): measured, about 12 steps. */
export const CANDIDATE_WORK = 12;
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
