import { Cluster, Redis, ReplyError } from 'ioredis';
import { nanoid } from 'nanoid';
import type { Logger } from 'pino';
import {
  FactsyncError, PRODUCER_WINDOW, decodeAgentInfo, decodeControlEvent, decodeDoorbell, decodePresence, encodeControlEvent, factField, recordsPrior, sha1Hex, splitFactField,
  type AgentInfo,
} from '@factsync/shared';
import { defineRedisScripts, type ScriptWrite } from './redis-commands.js';
import { oneWrite } from './fact-store.js';
import type {
  SourceRecord,
  AckEntry, AgentRecord, ChangesPage, ControlEvent, ControlListener, EnvHead, EnvListener, FactStore, RawFact, Resume,
  ResumeRequest, SessionOpen, SessionOpened, Snapshot, StateScan, WriteInput, WriteOutcome, WriteResult,
} from './fact-store.js';
import { toAgentRecords } from './agent-records.js';
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
  const redis = raw as unknown as Redis;
  const sub = connect({ ...common, enableOfflineQueue: true, commandTimeout: undefined }) as unknown as Redis;
  // Snapshots of large envs legitimately take seconds: they get their own connection with a longer timeout.
  const bulkClient = connect({ ...common, commandTimeout: opts.commandTimeoutMs * 12 }) as unknown as Redis;
  const log = opts.log.child({ module: 'redis-store' });
  const recordTtlMs = opts.agentRecordTtlMs ?? DEFAULT_AGENT_RECORD_TTL_MS;

  // Scripts publish with SPUBLISH under Cluster (see the events section).
  const scripts = defineRedisScripts(redis, opts.cluster === true);

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
      meta: `${base}:meta`, log: `${base}:log`, state: `${base}:state`, sources: `${base}:sources`, idem: (key: string) => `${base}:idem:${key}`, producer: (id: string) => `${base}:prod:${id}`,
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
    const writes: ScriptWrite[] = inputs.map((input) => {
      const opsJson = JSON.stringify(input.ops);
      return {
        ts: input.ts, opsJson,
        // The request's hash is stored with its Idempotency-Key (422 on reuse); without a key, nothing to hash.
        requestHash: input.idempotencyKey !== undefined || input.producer ? sha1Hex(opsJson) : '',
        idempotencyKey: input.producer ? keys.producer(input.producer.id) : input.idempotencyKey !== undefined ? keys.idem(input.idempotencyKey) : undefined,
        seq: input.producer?.seq ?? 0,
        source: input.source,
        ops: input.ops.map((op) => ({ kind: op.op, field: factField(op.type, op.key), valueJson: op.op === 'upsert' ? JSON.stringify(op.value) : '', recordPrior: recordsPrior(op.type) })),
      };
    });
    const reply = await guard('write', () => scripts.write({
      meta: keys.meta, log: keys.log, state: keys.state, sources: keys.sources, channel: keys.channel, epochCandidate: nanoid(12), retention: opts.logRetention,
      idempotencyTtlSeconds: opts.idempotencyTtlSeconds, inlineBytes: opts.inlineChangeBytes, producerWindow: PRODUCER_WINDOW, writes,
    }));
    const { epoch } = reply;
    let highest = 0;
    const results = reply.results.map(({ version, outcome }, i): WriteResult => {
      highest = Math.max(highest, version);
      switch (outcome) {
        case 'key_reused': return { ok: false, error: idempotencyKeyReused(inputs[i]!, version) };
        case 'seq_too_old': return { ok: false, error: producerSeqTooOld(inputs[i]!.producer!) };
        case 'position_only': return { ok: true, outcome: { version, epoch, duplicate: false, positionOnly: true } };
        default: return { ok: true, outcome: { version, epoch, duplicate: outcome === 'duplicate' || outcome === 'source_replayed' } };
      }
    });
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
    const r = await guard('agents', () => scripts.registry({ keys, recordTtlMs, withInfo }));
    const infos = new Map<string, AgentInfo>();
    for (const [id, raw] of r.details) infos.set(id, withInfo ? decodeAgentInfo(raw) : decodePresence(raw));
    return toAgentRecords(r.now, r.sessions, infos, r.applied, r.leases);
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

    async sources(env: string): Promise<SourceRecord[]> {
      const flat = await guard('sources', () => redis.hgetall(k(env).sources));
      return Object.entries(flat).map(([name, rec]) => decodeSourceRecord(name, rec)).sort((a, b) => (a.name < b.name ? -1 : 1));
    },

    async headWithCount(env: string): Promise<EnvHead & { facts: number }> {
      const keys = k(env);
      const res = await guard('head', () => redis.multi().hmget(keys.meta, 'version', 'epoch', 'id').hlen(keys.state).exec());
      const [v, e, id] = (res?.[0]?.[1] ?? []) as (string | null)[];
      return { version: Number(v ?? 0), epoch: e ?? null, id: id ?? '', facts: Number(res?.[1]?.[1] ?? 0) };
    },

    async ensureEpoch(env: string): Promise<EnvHead> {
      return guard('epoch', () => scripts.ensureEpoch({ meta: k(env).meta, epochCandidate: nanoid(12) }));
    },

    async changes(env: string, after: number, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<ChangesPage> {
      const keys = k(env);
      const { head, epoch, changes } = await guard('changes', () => scripts.changes({ meta: keys.meta, log: keys.log, after, limit, maxBytes }));
      if (after >= head) return { truncated: false, head, epoch, changes: [] };
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

    async scanState(env: string, cursor: string, count: number, type?: string): Promise<StateScan> {
      // Types are [a-z0-9_]: nothing in them is a glob character.
      const match = type === undefined ? [] : ['MATCH', `${type}:*`];
      const reply = await guard('snapshot scan', () => bulkClient.call('HSCAN', k(env).state, cursor, ...match, 'COUNT', count)) as [string, string[]];
      return { cursor: String(reply[0]), facts: rawFacts(reply[1]) };
    },

    async fact(env: string, type: string, key: string): Promise<EnvHead & { valueJson: string | null }> {
      const keys = k(env);
      const res = await guard('fact', () => redis.multi().hmget(keys.meta, 'version', 'epoch', 'id').hget(keys.state, factField(type, key)).exec());
      const [v, e, id] = (res?.[0]?.[1] ?? []) as (string | null)[];
      return { version: Number(v ?? 0), epoch: e ?? null, id: id ?? '', valueJson: (res?.[1]?.[1] as string | null) ?? null };
    },

    async resume(env: string, r: ResumeRequest): Promise<Resume> {
      const keys = k(env);
      return guard('resume', () => scripts.resume({ meta: keys.meta, log: keys.log, resume: r }));
    },

    async openSession(env: string, o: SessionOpen): Promise<SessionOpened> {
      const keys = k(env);
      return guard('open session', () => scripts.openSession({
        keys, resume: o.resume, agentId: o.id, epochCandidate: nanoid(12), session: o.session, replica: o.replica, leaseMs: o.leaseMs, addr: o.addr, recordTtlMs,
      }));
    },

    async endSession(env: string, id: string, session: string, graceful: boolean, leaseMs: number) {
      const keys = k(env);
      await guard('end session', () => scripts.endSession({ ...keys, agentId: id, session, graceful, leaseMs }));
    },

    async renewSessions(env: string, sessions: readonly (readonly [string, string])[], leaseMs: number) {
      const keys = k(env);
      const lost: string[] = [];
      for (let i = 0; i < sessions.length; i += RENEW_CHUNK) {
        lost.push(...await guard('renew', () => scripts.renew({ leases: keys.leases, sess: keys.sess, leaseMs, sessions: sessions.slice(i, i + RENEW_CHUNK) })));
      }
      return lost;
    },

    async recordAcks(env: string, acks: readonly AckEntry[], summary?: ControlEvent) {
      if (acks.length === 0 && !summary) return;
      const keys = k(env);
      // Chain ids travel once per acked version, not once per ack.
      const chains = new Map<number, string>();
      for (const a of acks) if (a.chainId || !chains.has(a.version)) chains.set(a.version, a.chainId);
      await guard('acks', () => scripts.acks({ sess: keys.sess, applied: keys.applied, ctl: keys.ctl, summary: summary ? encodeControlEvent(summary) : '', chains, acks }));
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
        const ev = decodeDoorbell(message);
        if (ev.ok) listener(ev.value);
        else log.warn({ env, err: ev.error }, 'ignoring malformed doorbell');
      });
    },

    async subscribeControl(env: string, listener: ControlListener) {
      return listen(k(env).ctl, (message) => {
        const ev = decodeControlEvent(message);
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

/** The WRITE script's "position\nversion\nts" of a source. */
function decodeSourceRecord(name: string, rec: string): SourceRecord {
  const [position = '', version = '0', updatedAt = ''] = rec.split('\n');
  return { name, position, version: Number(version), updatedAt };
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
