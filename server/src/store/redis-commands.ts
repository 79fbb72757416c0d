import type { Redis } from 'ioredis';
import { versionOfStreamId } from '@factsync/shared';
import * as lua from './redis-scripts.js';
import type { EnvHead, RawChange, Resume, ResumeRequest, ResumeVerdict } from './fact-store.js';

/**
 * A typed wrapper per Lua script: a named-arguments object in, a parsed reply
 * out. This is the only module that knows the scripts' KEYS and ARGV
 * positions and the layout of their replies; one added argument changes this
 * file and the script, and nothing else.
 */

/** The outcome of one write of a group, as the WRITE script reports it. */
export type WriteOutcomeKind = 'written' | 'duplicate' | 'key_reused' | 'seq_too_old' | 'source_replayed' | 'position_only';
const WRITE_OUTCOMES: readonly WriteOutcomeKind[] = ['written', 'duplicate', 'key_reused', 'seq_too_old', 'source_replayed', 'position_only'];

/** `recordPrior`: the script records where the fact was (Change.was), for types whose tenant is in their value. */
export interface ScriptOp { kind: 'upsert' | 'delete'; field: string; valueJson: string; recordPrior: boolean }
export interface ScriptWrite {
  ts: string;
  opsJson: string;
  /** sha1 of opsJson when the write carries an Idempotency-Key or a producer number, else ''. */
  requestHash: string;
  /** The Redis key of its Idempotency-Key, or of its producer's window. */
  idempotencyKey?: string;
  /** Its producer sequence number (0 = none). */
  seq: number;
  /** A source's name and position (X-Source): applied once per position. */
  source?: { name: string; position: string };
  ops: ScriptOp[];
}
export interface WriteArgs {
  meta: string; log: string; state: string; sources: string; channel: string;
  epochCandidate: string; retention: number; idempotencyTtlSeconds: number; inlineBytes: number; producerWindow: number;
  writes: readonly ScriptWrite[];
}
export interface WriteReply { epoch: string; results: { version: number; outcome: WriteOutcomeKind }[] }

export interface OpenSessionArgs {
  keys: { meta: string; log: string; sess: string; info: string; applied: string; leases: string; gone: string; ctl: string; pres: string };
  resume: ResumeRequest; agentId: string; epochCandidate: string; session: string; replica: string; leaseMs: number; addr: string; recordTtlMs: number;
}
export interface OpenSessionReply extends Resume {
  since: number;
  applied: number;
  replaced: { session: string; replica: string; addr: string } | null;
}
export interface RegistryReply {
  now: number;
  /** agent id → its current session. */
  sessions: Map<string, string>;
  /** agent id → its JSON details (or presence line, without `withInfo`). */
  details: Map<string, string>;
  /** agent id → acked version; 0 when the ack belongs to a history that was rewritten. */
  applied: Map<string, number>;
  /** agent id → lease expiry (ms). */
  leases: Map<string, number>;
}

type Raw = {
  fsWrite(numKeys: number, ...args: (string | number)[]): Promise<(number | string)[]>;
  fsChanges(meta: string, log: string, after: number, limit: number, maxBytes: number): Promise<(string | null)[]>;
  fsEnsureEpoch(meta: string, epochCandidate: string): Promise<[number, string, string]>;
  fsResume(...args: (string | number)[]): Promise<[number, string, string, string]>;
  fsOpen(...args: (string | number)[]): Promise<[number, string, string, string, number, number, string, string, string]>;
  fsEnd(...args: (string | number)[]): Promise<number>;
  fsRenew(...args: (string | number)[]): Promise<string[]>;
  fsAcks(...args: (string | number)[]): Promise<number>;
  fsRegistry(...args: (string | number)[]): Promise<[number, string[], string[], string[], number[], string[]]>;
};

const VERDICTS: readonly ResumeVerdict[] = ['resume', 'new', 'other_epoch', 'ahead', 'forked', 'unverifiable'];
function verdictOf(x: unknown): ResumeVerdict {
  if (!VERDICTS.includes(x as ResumeVerdict)) throw new Error(`a store script answered the verdict ${JSON.stringify(x)}: the scripts and redis-commands.ts disagree`);
  return x as ResumeVerdict;
}
const pairs = (flat: readonly string[]) => {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i]!, flat[i + 1]!);
  return m;
};

export interface RedisScripts {
  write(a: WriteArgs): Promise<WriteReply>;
  /** Changes after `after` (bounded by count and bytes), with the head and epoch read in the same step. */
  changes(a: { meta: string; log: string; after: number; limit: number; maxBytes: number }): Promise<{ head: number; epoch: string | null; changes: RawChange[] }>;
  ensureEpoch(a: { meta: string; epochCandidate: string }): Promise<EnvHead & { epoch: string }>;
  resume(a: { meta: string; log: string; resume: ResumeRequest }): Promise<Resume>;
  openSession(a: OpenSessionArgs): Promise<OpenSessionReply>;
  /** False when `session` is no longer the agent's (a newer one replaced it): nothing changed. */
  endSession(a: { sess: string; info: string; leases: string; gone: string; pres: string; agentId: string; session: string; graceful: boolean; leaseMs: number }): Promise<boolean>;
  /** The ids whose current session is another one. */
  renew(a: { leases: string; sess: string; leaseMs: number; sessions: readonly (readonly [string, string])[] }): Promise<string[]>;
  acks(a: { sess: string; applied: string; ctl: string; summary: string; chains: ReadonlyMap<number, string>; acks: readonly { id: string; session: string; version: number }[] }): Promise<void>;
  registry(a: { keys: { meta: string; log: string; sess: string; info: string; applied: string; leases: string; gone: string; pres: string }; recordTtlMs: number; withInfo: boolean }): Promise<RegistryReply>;
}

/** Registers the scripts on a connection; `cluster` publishes with SPUBLISH (sharded pub/sub). */
export function defineRedisScripts(redis: Redis, cluster: boolean): RedisScripts {
  const pub = (script: string) => (cluster ? script.replaceAll("redis.call('PUBLISH'", "redis.call('SPUBLISH'") : script);
  redis.defineCommand('fsWrite', { lua: pub(lua.WRITE) });
  redis.defineCommand('fsChanges', { lua: lua.CHANGES, numberOfKeys: 2 });
  redis.defineCommand('fsEnsureEpoch', { lua: lua.ENSURE_EPOCH, numberOfKeys: 1 });
  redis.defineCommand('fsResume', { lua: lua.RESUME, numberOfKeys: 2 });
  redis.defineCommand('fsOpen', { lua: pub(lua.OPEN_SESSION), numberOfKeys: 9 });
  redis.defineCommand('fsEnd', { lua: lua.END_SESSION, numberOfKeys: 5 });
  redis.defineCommand('fsRenew', { lua: lua.RENEW, numberOfKeys: 2 });
  redis.defineCommand('fsAcks', { lua: pub(lua.ACKS), numberOfKeys: 3 });
  redis.defineCommand('fsRegistry', { lua: lua.REGISTRY, numberOfKeys: 8 });
  const r = redis as unknown as Raw;
  const resumeArgs = (q: ResumeRequest) => [q.applied, q.epoch ?? '', q.appliedId ?? ''] as const;

  return {
    async write(a) {
      const keys = [a.meta, a.log, a.state, a.sources];
      const args: (string | number)[] = [];
      for (const w of a.writes) {
        let keyIndex = 0;
        if (w.idempotencyKey !== undefined) {
          keys.push(w.idempotencyKey);
          keyIndex = keys.length;
        }
        args.push(w.ts, w.opsJson, w.requestHash, keyIndex, w.seq, w.source?.name ?? '', w.source?.position ?? '', w.ops.length * 3);
        // Lower case: apply; upper case: apply and record the fact's prior tenant.
        for (const op of w.ops) args.push(op.kind === 'upsert' ? (op.recordPrior ? 'U' : 'u') : op.recordPrior ? 'D' : 'd', op.field, op.valueJson);
      }
      const reply = await r.fsWrite(keys.length, ...keys, a.epochCandidate, a.retention, a.idempotencyTtlSeconds, a.inlineBytes, a.channel, a.writes.length, a.producerWindow, ...args);
      const results = a.writes.map((_, i) => {
        const outcome = WRITE_OUTCOMES[Number(reply[2 * i + 1])];
        if (!outcome) throw new Error(`the WRITE script answered the outcome ${String(reply[2 * i + 1])}: the scripts and redis-commands.ts disagree`);
        return { version: Number(reply[2 * i]), outcome };
      });
      return { epoch: String(reply[reply.length - 1]), results };
    },

    async changes(a) {
      const reply = await r.fsChanges(a.meta, a.log, a.after, a.limit, Math.min(a.maxBytes, Number.MAX_SAFE_INTEGER));
      const changes: RawChange[] = [];
      for (let i = 2; i < reply.length; i += 2) changes.push({ version: versionOfStreamId(String(reply[i])), json: String(reply[i + 1] ?? '') });
      return { head: Number(reply[0] ?? 0), epoch: (reply[1] as string | null) ?? null, changes };
    },

    async ensureEpoch(a) {
      const [version, epoch, id] = await r.fsEnsureEpoch(a.meta, a.epochCandidate);
      return { version: Number(version), epoch, id };
    },

    async resume(a) {
      const [head, epoch, id, verdict] = await r.fsResume(a.meta, a.log, ...resumeArgs(a.resume));
      // A missing env stays missing: no epoch yet (null), version 0.
      return { version: Number(head), epoch: epoch === '' ? null : epoch, id, verdict: verdictOf(verdict) };
    },

    async openSession(a) {
      const k = a.keys;
      const [head, epoch, id, verdict, since, applied, rs, rr, ra] = await r.fsOpen(
        k.meta, k.log, k.sess, k.info, k.applied, k.leases, k.gone, k.ctl, k.pres,
        ...resumeArgs(a.resume), a.agentId, a.epochCandidate, a.session, a.replica, a.leaseMs, a.addr, a.recordTtlMs);
      return {
        version: Number(head), epoch, id, verdict: verdictOf(verdict), since: Number(since), applied: Number(applied),
        replaced: rs ? { session: rs, replica: rr, addr: ra } : null,
      };
    },

    async endSession(a) {
      return (await r.fsEnd(a.sess, a.info, a.leases, a.gone, a.pres, a.agentId, a.session, a.graceful ? '1' : '0', a.leaseMs)) === 1;
    },

    renew: (a) => r.fsRenew(a.leases, a.sess, a.leaseMs, ...a.sessions.flat()),

    async acks(a) {
      const chainArgs: (string | number)[] = [];
      for (const [v, id] of a.chains) chainArgs.push(v, id);
      const flat = a.acks.flatMap((x) => [x.id, x.session, x.version]);
      await r.fsAcks(a.sess, a.applied, a.ctl, a.summary, a.chains.size, ...chainArgs, ...flat);
    },

    async registry(a) {
      const k = a.keys;
      const [now, sess, details, applied, valid, leases] = await r.fsRegistry(k.meta, k.log, k.sess, k.info, k.applied, k.leases, k.gone, k.pres, a.recordTtlMs, a.withInfo ? '1' : '0');
      const appliedMap = new Map<string, number>();
      for (let i = 0; i + 1 < applied.length; i += 2) appliedMap.set(applied[i]!, Number(valid[i >> 1]) === 1 ? parseInt(applied[i + 1]!, 10) : 0);
      const leaseMap = new Map<string, number>();
      for (let i = 0; i + 1 < leases.length; i += 2) leaseMap.set(leases[i]!, Number(leases[i + 1]));
      return { now: Number(now), sessions: pairs(sess), details: pairs(details), applied: appliedMap, leases: leaseMap };
    },
  };
}
