import type { FastifyReply } from 'fastify';
import { awaitAtLeast, VERSION_HEADER, type ReadRequest, type ReadYourWrites } from '../check-api.js';
import type { Decider } from '../decide/decider.js';
import type { ApplyGate } from '../apply-gate.js';
import type { LocalStore } from '../local-store.js';
import type { PermitViews } from './views.js';

/** What the Permit routes need of the agent: its facts, its decisions, and how to wait for a version. */
export interface PermitDeps {
  env: string;
  store: LocalStore;
  decider: Decider;
  views: PermitViews;
  readYourWrites: ReadYourWrites;
  /** Listings that yield hold it (apply-gate.ts). */
  gate: ApplyGate;
}

/**
 * Before a read: waits for `?at_least=V` (504 not_synced after X-Wait-Timeout),
 * then stamps the version the answer is read at. The read that follows is
 * synchronous, so it sees exactly that version.
 */
export async function readAt(d: PermitDeps, req: ReadRequest, reply: FastifyReply): Promise<void> {
  await awaitAtLeast(req, reply, d.readYourWrites);
  void reply.header(VERSION_HEADER, d.store.version);
}
