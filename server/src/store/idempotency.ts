import { FactsyncError, PRODUCER_WINDOW, type ProducerSeq } from '@factsync/shared';
import type { WriteInput } from './fact-store.js';

/** The answers both stores give when a write's idempotency record refuses it. */
export function idempotencyKeyReused(input: Pick<WriteInput, 'idempotencyKey' | 'producer'>, version: number): FactsyncError {
  const what = input.producer ? `X-Producer-Seq ${input.producer.seq} of producer "${input.producer.id}"` : `Idempotency-Key "${input.idempotencyKey}"`;
  return new FactsyncError('idempotency_key_reused',
    `${what} was first used for a different write (version ${version}); use a new key for a new write`, { version });
}

export function producerSeqTooOld(p: ProducerSeq): FactsyncError {
  return new FactsyncError('producer_seq_too_old',
    `X-Producer-Seq ${p.seq} of producer "${p.id}" is older than the last ${PRODUCER_WINDOW} it used, so whether it was written is no longer known; `
    + `keep a producer's writes in flight within ${PRODUCER_WINDOW} sequence numbers, or read the log to find it`);
}
