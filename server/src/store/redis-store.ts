import { Cluster, Redis, ReplyError } from 'ioredis';
import { nanoid } from 'nanoid';
import type { Logger } from 'pino';
import { FactsyncError, PRODUCER_WINDOW, factField, sha1Hex, splitFactField, streamIdOf, versionOfStreamId } from '@factsync/shared';
import * as scripts from './redis-scripts.js';
import { encodeControlEvent, parseControlEvent, parseEnvEvent } from './events.js';
import { oneWrite } from './fact-store.js';
import type {
  AckEntry, AgentRecord, ChangesPage, ControlEvent, ControlListener, EnvHead, EnvListener, FactStore, RawChange, RawFact, Resume,
  ResumeRequest, ResumeVerdict, SessionOpen, SessionOpened, Snapshot, StateScan, WriteInput, WriteOutcome, WriteResult,
} from './fact-store.js';
import { parseAgentInfo, parsePresence, toAgentRecords, type AgentInfoRecord } from './agent-records.js';
import { idempotencyKeyReused, producerSeqTooOld } from './idempotency.js';

export interface RedisStoreOptions {
  /** One URL; with `cluster`, a comma list of seed nodes of a Redis Cluster. */
  url: string;
  cluster?: boolean;
  keyPrefix: string;
  logRetention: number;
  idempotencyTtlSeconds: number;
  /** Changes up to this many bytes ride inside the pub/sub doorbell; larger ones are read from the log. */
  inlineChangeBytes: number;
  commandTimeoutMs: number;
  /** Records of agents that left are dropped this long after they left (default a day). */
  agentRecordTtlMs?: number;
  /** With n > 0, a write is answered only once n Redis replicas have it (WAIT). */
  waitReplicas?: number;
  waitReplicasTimeoutMs?: number;
  log: Logger;
  /** Called on every connection error and every command that failed for lack of a store (metrics). */
  onError?: () => void;
}

type ScriptCommands = {
  fsWrite(numKeys: number, ...args: (string | number)[]): Promise<(number | string)[]>;
  fsChanges(meta: string, log: string, after: number, limit: number, maxBytes: number): Promise<(string | null)[]>;
  fsEnsureEpoch(...args: (string | number)[]): Promise<[number, string, string]>;
  fsResume(...args: (string | number)[]): Promise<[number, string, string, string]>;
  fsOpen(...args: (string | number)[]): Promise<[number, string, string, string, number, number, string, string, string]>;
  fsEnd(...args: (string | number)[]): Promise<number>;
  fsRenew(...args: (string | number)[]): Promise<string[]>;
  fsAcks(...args: (string | number)[]): Promise<number>;
  fsRegistry(...args: (string | number)[]): Promise<[number, string[], string[], string[], number[], string[]]>;
};

/**
 * Redis answers that mean "not now" rather than "your request is wrong": the
 * write did not happen and a retry later may succeed, so they are a 503 with
 * Retry-After (and the agent's forwarder retries them with the same key).
 */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|NOSCRIPT|OOM|CLUSTERDOWN|TRYAGAIN|MOVED|ASK|NOREPLICAS|NOTREADY)\b/;
export const isTransientRedisReply = (message: string): boolean => TRANSIENT_REPLY.test(message);

const RENEW_CHUNK = 500;
/** A URL for a log line: the password never leaves. */
const redactUrl = (url: string): string => url.replace(/\/\/([^:@/]*):[^@/]*@/g, '//$1:***@');
export const DEFAULT_AGENT_RECORD_TTL_MS = 24 * 3600_000;

export async function createRedisStore(opts: RedisStoreOptions): Promise<FactStore> {
  const common = {
    lazyConnect: true,
    // Fail fast while Redis is away: a write must get 503, never wait in a queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  };
  // Every key of an env shares the hash tag {env}: each script and MULTI touches one slot, so the
  // same code runs on one Redis or on a Cluster that shards envs across nodes.
  const connect = (o: typeof common | (Omit<typeof common, 'commandTimeout'> & { commandTimeout: undefined })): Redis | Cluster => {
    if (!opts.cluster) return new Redis(opts.url, o);
    const seeds = opts.url.split(',').map((u) => {
      const x = new URL(u.trim());
      return { host: x.hostname, port: Number(x.port || 6379) };
    });
    return new Cluster(seeds, {
      lazyConnect: true, enableOfflineQueue: o.enableOfflineQueue, clusterRetryStrategy: o.retryStrategy, shardedSubscribers: true,
      redisOptions: { maxRetriesPerRequest: o.maxRetriesPerRequest, commandTimeout: o.commandTimeout },
    });
  };
  const raw = connect(common);
  // The commands used below exist on both clients with the same signatures.
  const redis = raw as unknown as Redis & ScriptCommands;
  const sub = connect({ ...common, enableOfflineQueue: true, commandTimeout: undefined }) as unknown as Redis;
  // Snapshots of large envs legitimately take seconds: they get their own connection with a longer timeout.
  const bulkClient = connect({ ...common, commandTimeout: opts.commandTimeoutMs * 12 }) as unknown as Redis;
  const log = opts.log.child({ module: 'redis-store' });
  const recordTtlMs = opts.agentRecordTtlMs ?? DEFAULT_AGENT_RECORD_TTL_MS;

  // Scripts publish with SPUBLISH under Cluster (see the events section).
  const pub = (lua: string) => (opts.cluster ? lua.replaceAll("redis.call('PUBLISH'", "redis.call('SPUBLISH'") : lua);
  redis.defineCommand('fsWrite', { lua: pub(scripts.WRITE) });
  redis.defineCommand('fsChanges', { lua: scripts.CHANGES, numberOfKeys: 2 });
  redis.defineCommand('fsEnsureEpoch', { lua: scripts.ENSURE_EPOCH, numberOfKeys: 1 });
  redis.defineCommand('fsResume', { lua: scripts.RESUME, numberOfKeys: 2 });
  redis.defineCommand('fsOpen', { lua: pub(scripts.OPEN_SESSION), numberOfKeys: 9 });
  redis.defineCommand('fsEnd', { lua: scripts.END_SESSION, numberOfKeys: 5 });
  redis.defineCommand('fsRenew', { lua: scripts.RENEW, numberOfKeys: 2 });
  redis.defineCommand('fsAcks', { lua: pub(scripts.ACKS), numberOfKeys: 3 });
  redis.defineCommand('fsRegistry', { lua: scripts.REGISTRY, numberOfKeys: 8 });

  let lastError = '';
  for (const [name, conn] of [['command', redis], ['subscriber', sub], ['bulk', bulkClient]] as const) {
    conn.on('error', (e: Error) => {
      opts.onError?.();
      if (e.message !== lastError) log.error({ conn: name, err: e.message }, 'redis connection error');
      lastError = e.message;
    });
  }
  try {
    await Promise.all([redis.connect(), sub.connect(), bulkClient.connect()]);
  } catch (e) {
    redis.disconnect();
    sub.disconnect();
    bulkClient.disconnect();
    throw new Error(`cannot reach Redis at REDIS_URL=${redactUrl(opts.url)} (${(e as Error).message}); start Redis there or fix REDIS_URL`);
  }
  // Durability (invariant 4) depends on AOF; say so once at start-up rather than after a restart lost writes.
  if (!opts.cluster) {
    const info = await (raw as Redis).info('persistence').catch(() => '');
    if (/aof_enabled:0/.test(info)) {
      log.warn('Redis runs without AOF (appendonly no): a Redis restart loses acknowledged writes (factsync notices and resyncs agents, but the writes are gone); enable appendonly yes in production');
    }
  }

  const USAGE_RETENTION_S = 400 * 24 * 3600;
  const k = (env: string) => {
    const base = `${opts.keyPrefix}:{${env}}`;
    return {
      meta: `${base}:meta`, log: `${base}:log`, state: `${base}:state`, idem: (key: string) => `${base}:idem:${key}`, producer: (id: string) => `${base}:prod:${id}`,
      sess: `${base}:sess`, info: `${base}:info`, applied: `${base}:applied`, leases: `${base}:leases`, gone: `${base}:gone`, pres: `${base}:pres`,
      channel: `${base}:events`, ctl: `${base}:ctl`, mau: (month: string) => `${base}:mau:${month}`,
    };
  };

  /** Connection-level failures become 503 store_unavailable; a script error is a bug and stays a 500. */
  async function guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof FactsyncError) throw e;
      opts.onError?.();
      if (e instanceof ReplyError && !isTransientRedisReply((e as Error).message)) throw e;
      throw new FactsyncError('store_unavailable', `the store is unavailable (${what}: ${(e as Error).message}); retry shortly`);
    }
  }

  async function writeMany(env: string, inputs: readonly WriteInput[]): Promise<WriteResult[]> {
    const keys = k(env);
    const keyList = [keys.meta, keys.log, keys.state];
    const args: (string | number)[] = [];
    for (const input of inputs) {
      const opsJson = JSON.stringify(input.ops);
      // The request's hash is stored with its Idempotency-Key (422 on reuse); without a key, nothing to hash.
      const requestHash = input.idempotencyKey !== undefined || input.producer ? sha1Hex(opsJson) : '';
      let idemIndex = 0;
      if (input.producer) {
        keyList.push(keys.producer(input.producer.id));
        idemIndex = keyList.length;
      } else if (input.idempotencyKey !== undefined) {
        keyList.push(keys.idem(input.idempotencyKey));
        idemIndex = keyList.length;
      }
      args.push(input.ts, opsJson, requestHash, idemIndex, input.producer?.seq ?? 0, input.ops.length * 3);
      for (const op of input.ops) {
        if (op.op === 'upsert') args.push('u', factField(op.type, op.key), JSON.stringify(op.value));
        else args.push('d', factField(op.type, op.key), '');
      }
    }
    const reply = await guard('write', () =>
      redis.fsWrite(keyList.length, ...keyList, nanoid(12), opts.logRetention, opts.idempotencyTtlSeconds, opts.inlineChangeBytes, keys.channel, inputs.length, PRODUCER_WINDOW, ...args),
    );
    const epoch = String(reply[reply.length - 1]);
    const results: WriteResult[] = [];
    let highest = 0;
    for (let i = 0; i < inputs.length; i++) {
      const version = Number(reply[2 * i]);
      const flag = Number(reply[2 * i + 1]);
      highest = Math.max(highest, version);
      results.push(flag === 2 ? { ok: false, error: idempotencyKeyReused(inputs[i]!, version) }
        : flag === 3 ? { ok: false, error: producerSeqTooOld(inputs[i]!.producer!) }
        : { ok: true, outcome: { version, epoch, duplicate: flag === 1 } });
    }
    // Once for the group; a replay waits too: the first attempt may have been answered 503 for want of replicas.
    if (opts.waitReplicas) await waitForReplicas(highest);
    return results;
  }

  // ---- events -------------------------------------------------------------
  // Under Redis Cluster, sharded pub/sub (SPUBLISH/SSUBSCRIBE): an env's channels hash with its keys
  // ({env}), so its traffic stays on its shard instead of being broadcast to every node.
  const sharded = opts.cluster === true;
  // One subscription per channel; a channel carries either doorbells or control events of one env.
  const listeners = new Map<string, Set<(message: string) => void>>();
  const resetCallbacks: (() => void)[] = [];
  let subReadyOnce = false;
  sub.on('ready', () => {
    if (subReadyOnce) {
      log.warn('event subscription re-established; healing possibly missed events');
      for (const cb of resetCallbacks) cb();
    }
    subReadyOnce = true;
  });
  sub.on(sharded ? 'smessage' : 'message', (channel: string, message: string) => {
    for (const l of listeners.get(channel) ?? []) l(message);
  });
  async function listen(channel: string, l: (message: string) => void): Promise<() => Promise<void>> {
    let set = listeners.get(channel);
    if (!set) {
      set = new Set();
      listeners.set(channel, set);
      await (sharded ? (sub as unknown as { ssubscribe(c: string): Promise<unknown> }).ssubscribe(channel) : sub.subscribe(channel));
    }
    set.add(l);
    return async () => {
      const s = listeners.get(channel);
      if (!s) return;
      s.delete(l);
      if (s.size === 0) {
        listeners.delete(channel);
        await (sharded ? (sub as unknown as { sunsubscribe(c: string): Promise<unknown> }).sunsubscribe(channel) : sub.unsubscribe(channel)).catch(() => undefined);
      }
    };
  }
  const resumeArgs = (r: ResumeRequest) => [r.applied, r.epoch ?? '', r.appliedId ?? ''] as const;

  /**
   * REDIS_WAIT_REPLICAS: WAIT covers every write this connection sent before it, so one WAIT
   * after the script makes this write (and all earlier ones) survive a failover to any of n replicas.
   */
  async function waitForReplicas(version: number): Promise<void> {
    const n = opts.waitReplicas ?? 0;
    const got = Number(await guard('wait replicas', () => redis.call('WAIT', n, opts.waitReplicasTimeoutMs ?? 1000) as Promise<number>));
    if (got < n) {
      throw new FactsyncError('store_unavailable',
        `version ${version} was written but only ${got} of the ${n} Redis replicas REDIS_WAIT_REPLICAS asks for confirmed it; retry with the same Idempotency-Key`,
        { version });
    }
  }

  /** The env's agent records: with `withInfo` for the listing (JSON details), else only what the waiting rules read. */
  async function registry(env: string, withInfo: boolean): Promise<AgentRecord[]> {
    const keys = k(env);
    const [now, sess, details, applied, valid, leases] = await guard('agents', () =>
      redis.fsRegistry(keys.meta, keys.log, keys.sess, keys.info, keys.applied, keys.leases, keys.gone, keys.pres, recordTtlMs, withInfo ? '1' : '0'));
    const sessions = new Map<string, string>();
    for (let i = 0; i + 1 < sess.length; i += 2) sessions.set(sess[i]!, sess[i + 1]!);
    const appliedMap = new Map<string, number>();
    for (let i = 0; i + 1 < applied.length; i += 2) {
      appliedMap.set(applied[i]!, Number(valid[i >> 1]) === 1 ? parseInt(applied[i + 1]!, 10) : 0);
    }
    const leaseMap = new Map<string, number>();
    for (let i = 0; i + 1 < leases.length; i += 2) leaseMap.set(leases[i]!, Number(leases[i + 1]));
    const infos = new Map<string, AgentInfoRecord>();
    for (let i = 0; i + 1 < details.length; i += 2) infos.set(details[i]!, withInfo ? parseAgentInfo(details[i + 1]!) : parsePresence(details[i + 1]!));
    return toAgentRecords(Number(now), sessions, infos, appliedMap, leaseMap);
  }

  const store: FactStore = {
    kind: 'redis',

    writeMany,

    async write(env: string, input: WriteInput): Promise<WriteOutcome> {
      return oneWrite(await writeMany(env, [input]));
    },

    async head(env: string): Promise<EnvHead> {
      const [v, e, id] = await guard('head', () => redis.hmget(k(env).meta, 'version', 'epoch', 'id'));
      return { version: Number(v ?? 0), epoch: e ?? null, id: id ?? '' };
    },

    async headWithCount(env: string): Promise<EnvHead & { facts: number }> {
      const keys = k(env);
      const res = await guard('head', () => redis.multi().hmget(keys.meta, 'version', 'epoch', 'id').hlen(keys.state).exec());
      const [v, e, id] = (res?.[0]?.[1] ?? []) as (string | null)[];
      return { version: Number(v ?? 0), epoch: e ?? null, id: id ?? '', facts: Number(res?.[1]?.[1] ?? 0) };
    },

    async ensureEpoch(env: string): Promise<EnvHead> {
      const [v, e, id] = await guard('epoch', () => redis.fsEnsureEpoch(k(env).meta, 0, 0, 0, 0, nanoid(12)));
      return { version: Number(v), epoch: e, id };
    },

    async changes(env: string, after: number, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<ChangesPage> {
      const keys = k(env);
      const reply = await guard('changes', () => redis.fsChanges(keys.meta, keys.log, after, limit, Math.min(maxBytes, Number.MAX_SAFE_INTEGER)));
      const head = Number(reply[0] ?? 0);
      const epoch = (reply[1] as string | null) ?? null;
      if (after >= head) return { truncated: false, head, epoch, changes: [] };
      const changes: RawChange[] = [];
      for (let i = 2; i < reply.length; i += 2) changes.push({ version: versionOfStreamId(String(reply[i])), json: String(reply[i + 1] ?? '') });
      if (changes.length === 0 || changes[0]!.version !== after + 1) return { truncated: true, head, epoch };
      return { truncated: false, head, epoch, changes };
    },

    async snapshot(env: string): Promise<Snapshot> {
      const keys = k(env);
      // `call('HGETALL')` keeps the flat reply: the typed hgetall builds an object of a million
      // keys first, which took most of a large snapshot's time. The bulk connection has a longer
      // command timeout, since reading a large env legitimately takes seconds.
      const res = await guard('snapshot', () => bulkClient.multi().hmget(keys.meta, 'version', 'epoch', 'id').call('HGETALL', keys.state).exec());
      const [v, e, id] = (res?.[0]?.[1] ?? []) as (string | null)[];
      return { version: Number(v ?? 0), epoch: e ?? null, id: id ?? '', facts: rawFacts((res?.[1]?.[1] ?? []) as string[]) };
    },

    async scanState(env: string, cursor: string, count: number): Promise<StateScan> {
      const reply = await guard('snapshot scan', () => bulkClient.call('HSCAN', k(env).state, cursor, 'COUNT', count)) as [string, string[]];
      return { cursor: String(reply[0]), facts: rawFacts(reply[1]) };
    },

    async resume(env: string, r: ResumeRequest): Promise<Resume> {
      const keys = k(env);
      const [head, epoch, id, verdict] = await guard('resume', () => redis.fsResume(keys.meta, keys.log, ...resumeArgs(r)));
      // A missing env stays missing: no epoch yet (null), version 0.
      return { version: Number(head), epoch: epoch === '' ? null : epoch, id, verdict: verdict as ResumeVerdict };
    },

    async openSession(env: string, o: SessionOpen): Promise<SessionOpened> {
      const keys = k(env);
      const [head, epoch, id, verdict, since, applied, rs, rr, ra] = await guard('open session', () =>
        redis.fsOpen(keys.meta, keys.log, keys.sess, keys.info, keys.applied, keys.leases, keys.gone, keys.ctl, keys.pres,
          ...resumeArgs(o.resume), o.id, nanoid(12), o.session, o.replica, o.leaseMs, o.addr, recordTtlMs));
      return {
        version: Number(head), epoch, id, verdict: verdict as ResumeVerdict, since: Number(since), applied: Number(applied),
        replaced: rs ? { session: rs, replica: rr, addr: ra } : null,
      };
    },

    async endSession(env: string, id: string, session: string, graceful: boolean, leaseMs: number) {
      const keys = k(env);
      await guard('end session', () => redis.fsEnd(keys.sess, keys.info, keys.leases, keys.gone, keys.pres, id, session, graceful ? '1' : '0', leaseMs));
    },

    async renewSessions(env: string, sessions: readonly (readonly [string, string])[], leaseMs: number) {
      const keys = k(env);
      const lost: string[] = [];
      for (let i = 0; i < sessions.length; i += RENEW_CHUNK) {
        const flat = sessions.slice(i, i + RENEW_CHUNK).flat();
        lost.push(...await guard('renew', () => redis.fsRenew(keys.leases, keys.sess, leaseMs, ...flat)));
      }
      return lost;
    },

    async recordAcks(env: string, acks: readonly AckEntry[], summary?: ControlEvent) {
      if (acks.length === 0 && !summary) return;
      const keys = k(env);
      const chains = new Map<number, string>();
      const flat: (string | number)[] = [];
      for (const a of acks) {
        if (a.chainId || !chains.has(a.version)) chains.set(a.version, a.chainId);
        flat.push(a.id, a.session, a.version);
      }
      const chainArgs: (string | number)[] = [];
      for (const [v, id] of chains) chainArgs.push(v, id);
      await guard('acks', () => redis.fsAcks(keys.sess, keys.applied, keys.ctl, summary ? encodeControlEvent(summary) : '', chains.size, ...chainArgs, ...flat));
    },

    async publishControl(env: string, event: ControlEvent) {
      await guard('publish', () => (opts.cluster ? redis.call('SPUBLISH', k(env).ctl, encodeControlEvent(event)) : redis.publish(k(env).ctl, encodeControlEvent(event))));
    },

    async recordUsage(env: string, month: string, users: readonly string[]) {
      const key = k(env).mau(month);
      // Kept a little over a year, so last year's same month can still be read.
      await guard('usage', async () => {
        await redis.sadd(key, ...users);
        await redis.expire(key, USAGE_RETENTION_S);
      });
    },

    usage: (env: string, month: string) => guard('usage', () => redis.scard(k(env).mau(month))),

    agents: (env: string) => registry(env, true),
    syncStates: (env: string) => registry(env, false),

    async subscribe(env: string, listener: EnvListener) {
      return listen(k(env).channel, (message) => {
        const ev = parseEnvEvent(message);
        if (ev.ok) listener(ev.value);
        else log.warn({ env, err: ev.error }, 'ignoring malformed doorbell');
      });
    },

    async subscribeControl(env: string, listener: ControlListener) {
      return listen(k(env).ctl, (message) => {
        const ev = parseControlEvent(message);
        if (ev.ok) listener(ev.value);
        else log.warn({ env, err: ev.error }, 'ignoring malformed control event');
      });
    },

    onEventsReset(cb: () => void) {
      resetCallbacks.push(cb);
    },

    async envs(limit: number) {
      const found = new Set<string>();
      const pattern = `${opts.keyPrefix}:{*}:meta`;
      // A Cluster is scanned node by node; to the end, since stopping early would not give the first names in order.
      const nodes: Redis[] = raw instanceof Cluster ? raw.nodes('master') : [raw];
      for (const node of nodes) {
        let cursor = '0';
        do {
          const [next, keys] = await guard('envs', () => node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000));
          cursor = next;
          for (const key of keys) {
            const env = key.slice(opts.keyPrefix.length + 2, key.length - ':meta'.length - 1);
            if (env) found.add(env);
          }
        } while (cursor !== '0');
      }
      return [...found].sort().slice(0, limit);
    },

    async ping() {
      await guard('ping', () => redis.ping());
    },

    async close() {
      await Promise.allSettled([redis.quit(), sub.quit(), bulkClient.quit()]);
      redis.disconnect();
      sub.disconnect();
      bulkClient.disconnect();
    },
  };
  return store;
}

/** A flat `field, value, field, value…` reply of the state hash (HGETALL, HSCAN) as facts with their stored JSON. */
function rawFacts(flat: readonly string[]): RawFact[] {
  const facts: RawFact[] = new Array(flat.length >> 1);
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const { type, key } = splitFactField(flat[i]!);
    facts[i >> 1] = { type, key, valueJson: flat[i + 1]! };
  }
  return facts;
}
