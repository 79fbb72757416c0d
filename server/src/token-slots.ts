import { FactsyncError } from '@factsync/shared';

/**
 * Open connections of one kind per token on a replica (websockets:
 * MAX_CONNECTIONS_PER_TOKEN; long-polls: MAX_WAITS_PER_TOKEN; status streams:
 * MAX_STREAMS_PER_TOKEN): each holds a socket, so a token may hold at most
 * `max` at once; one more is a 429.
 */
export class TokenSlots {
  private readonly held = new Map<number, number>();
  constructor(private readonly max: number, private readonly what: string, private readonly variable: string) {}

  /** Throws the 429 when the token has no slot left (before any work is done for the request). */
  check(tokenIndex: number): void {
    const n = this.held.get(tokenIndex) ?? 0;
    if (n >= this.max) throw new FactsyncError('too_many_connections', `this token already has ${n} ${this.what} on this replica (${this.variable}); wait for some to finish`);
  }

  /** Takes a slot (or throws as `check`); the function returned gives it back, once. */
  acquire(tokenIndex: number): () => void {
    this.check(tokenIndex);
    this.held.set(tokenIndex, (this.held.get(tokenIndex) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(tokenIndex) ?? 1) - 1;
      if (left <= 0) this.held.delete(tokenIndex);
      else this.held.set(tokenIndex, left);
    };
  }
}
