import { Cluster, Redis, ReplyError } from 'ioredis';
import { nanoid } from 'nanoid';
import type { Logger } from 'pino';
import { FactsyncError, factField, splitFactField, streamIdOf, versionOfStreamId } from '@factsync/shared';
import * as scripts from './redis-scripts.js';
import { parseEnvEvent } from './events.js';
import type {
  AgentConnect, AgentRecord, ChangesPage, EnvHead, EnvListener, FactStore, RawChange, RawFact, Snapshot, WriteInput, WriteOutcome,
} from './fact-store.js';

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
  log: Logger;
  /** Called on every connection error and every command that failed for lack of a store (metrics). */
  onError?: () => void;
}

type ScriptCommands = {
  fsWrite(numKeys: number, ...args: (string | number)[]): Promise<[number, string, number]>;
  fsEnsureEpoch(meta: string, epoch: string): Promise<[number, string]>;
  fsConnect(...args: (string | number)[]): Promise<[number, string]>;
  fsDisconnect(...args: string[]): Promise<number>;
  fsRenew(...args: (string | number)[]): Promise<number>;
  fsAcks(...args: (string | number)[]): Promise<number>;
  fsAgents(...keys: string[]): Promise<[number, string[], string[], string[], string[]]>;
};

const RENEW_CHUNK = 500;

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
      lazyConnect: true, enableOfflineQueue: o.enableOfflineQueue, clusterRetryStrategy: o.retryStrategy,
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

  redis.defineCommand('fsWrite', { lua: scripts.WRITE });
  redis.defineCommand('fsEnsureEpoch', { lua: scripts.ENSURE_EPOCH, numberOfKeys: 1 });
  redis.defineCommand('fsConnect', { lua: scripts.CONNECT, numberOfKeys: 4 });
  redis.defineCommand('fsDisconnect', { lua: scripts.DISCONNECT, numberOfKeys: 3 });
  redis.defineCommand('fsRenew', { lua: scripts.RENEW, numberOfKeys: 1 });
  redis.defineCommand('fsAcks', { lua: scripts.ACKS, numberOfKeys: 2 });
  redis.defineCommand('fsAgents', { lua: scripts.AGENTS, numberOfKeys: 4 });

  let lastError = '';
  for (const [name, conn] of [['command', redis], ['subscriber', sub], ['bulk', bulkClient]] as const) {
    conn.on('error', (e: Error) => {
      opts.onError?.();
      if (e.message !== lastError) log.error({ conn: name, err: e.message }, 'redis connection error');
      lastError = e.message;
    });
  }
  await Promise.all([redis.connect(), sub.connect(), bulkClient.connect()]);

  const k = (env: string) => {
    const base = `${opts.keyPrefix}:{${env}}`;
    return {
      meta: `${base}:meta`, log: `${base}:log`, state: `${base}:state`, idem: (key: string) => `${base}:idem:${key}`,
      agents: `${base}:agents`, acks: `${base}:acks`, seen: `${base}:seen`, leases: `${base}:leases`, channel: `${base}:events`,
    };
  };

  /** Connection-level failures become 503 store_unavailable; a script error is a bug and stays a 500. */
  async function guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      opts.onError?.();
      if (e instanceof ReplyError && !/LOADING|BUSY|MASTERDOWN|READONLY|NOSCRIPT/.test((e as Error).message)) throw e;
      throw new FactsyncError('store_unavailable', `the store is unavailable (${what}: ${(e as Error).message}); retry shortly`);
    }
  }

  // ---- events -------------------------------------------------------------
  const listeners = new Map<string, Set<EnvListener>>();
  const envOfChannel = new Map<string, string>();
  const resetCallbacks: (() => void)[] = [];
  let subReadyOnce = false;
  sub.on('ready', () => {
    if (subReadyOnce) {
      log.warn('event subscription re-established; healing possibly missed events');
      for (const cb of resetCallbacks) cb();
    }
    subReadyOnce = true;
  });
  sub.on('message', (channel: string, message: string) => {
    const env = envOfChannel.get(channel);
    if (!env) return;
    const ev = parseEnvEvent(message);
    if (!ev.ok) {
      log.warn({ env, err: ev.error }, 'ignoring malformed event');
      return;
    }
    for (const l of listeners.get(env) ?? []) l(ev.value);
  });

  const store: FactStore = {
    kind: 'redis',

    async write(env: string, input: WriteInput): Promise<WriteOutcome> {
      const keys = k(env);
      const flat: string[] = [];
      for (const op of input.ops) {
        if (op.op === 'upsert') flat.push('u', factField(op.type, op.key), JSON.stringify(op.value));
        else flat.push('d', factField(op.type, op.key), '');
      }
      const keyList = [keys.meta, keys.log, keys.state];
      if (input.idempotencyKey !== undefined) keyList.push(keys.idem(input.idempotencyKey));
      const [version, epoch, dup] = await guard('write', () =>
        redis.fsWrite(keyList.length, ...keyList, nanoid(12), input.ts, opts.logRetention, opts.idempotencyTtlSeconds,
          opts.inlineChangeBytes, keys.channel, JSON.stringify(input.ops), ...flat),
      );
      return { version: Number(version), epoch, duplicate: dup === 1 };
    },

    async head(env: string): Promise<EnvHead> {
      const [v, e] = await guard('head', () => redis.hmget(k(env).meta, 'version', 'epoch'));
      return { version: Number(v ?? 0), epoch: e ?? null };
    },

    async ensureEpoch(env: string): Promise<EnvHead> {
      const [v, e] = await guard('epoch', () => redis.fsEnsureEpoch(k(env).meta, nanoid(12)));
      return { version: Number(v), epoch: e };
    },

    async changes(env: string, after: number, limit: number): Promise<ChangesPage> {
      const keys = k(env);
      const res = await guard('changes', () =>
        redis.multi().hmget(keys.meta, 'version', 'epoch').xrange(keys.log, streamIdOf(after + 1), '+', 'COUNT', limit).exec(),
      );
      const [v, e] = (res?.[0]?.[1] ?? []) as (string | null)[];
      const head = Number(v ?? 0);
      const epoch = e ?? null;
      const entries = (res?.[1]?.[1] ?? []) as [string, string[]][];
      if (after >= head) return { truncated: false, head, epoch, changes: [] };
      const changes: RawChange[] = entries.map(([id, fields]) => ({ version: versionOfStreamId(id), json: fields[1] ?? '' }));
      if (changes.length === 0 || changes[0]!.version !== after + 1) return { truncated: true, head, epoch };
      return { truncated: false, head, epoch, changes };
    },

    async snapshot(env: string): Promise<Snapshot> {
      const keys = k(env);
      // `call('HGETALL')` keeps the flat reply: the typed hgetall builds an object of a million
      // keys first, which took most of a large snapshot's time. The bulk connection has a longer
      // command timeout, since reading a large env legitimately takes seconds.
      const res = await guard('snapshot', () => bulkClient.multi().hmget(keys.meta, 'version', 'epoch').call('HGETALL', keys.state).exec());
      const [v, e] = (res?.[0]?.[1] ?? []) as (string | null)[];
      const flat = (res?.[1]?.[1] ?? []) as string[];
      const facts: RawFact[] = new Array(flat.length >> 1);
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const { type, key } = splitFactField(flat[i]!);
        facts[i >> 1] = { type, key, valueJson: flat[i + 1]! };
      }
      return { version: Number(v ?? 0), epoch: e ?? null, facts };
    },

    async connectAgent(env: string, c: AgentConnect) {
      const keys = k(env);
      const [since, epoch] = await guard('connect', () =>
        redis.fsConnect(keys.meta, keys.agents, keys.leases, keys.seen, c.id, c.conn, c.replica, c.leaseMs, nanoid(12), keys.channel),
      );
      return { version: Number(since), since: Number(since), epoch };
    },

    async disconnectAgent(env: string, id: string, conn: string) {
      const keys = k(env);
      await guard('disconnect', () => redis.fsDisconnect(keys.agents, keys.leases, keys.seen, id, conn, keys.channel));
    },

    async renewLeases(env: string, ids: readonly string[], leaseMs: number) {
      const keys = k(env);
      for (let i = 0; i < ids.length; i += RENEW_CHUNK) {
        const chunk = ids.slice(i, i + RENEW_CHUNK);
        await guard('renew', () => redis.fsRenew(keys.leases, leaseMs, ...chunk));
      }
    },

    async recordAcks(env: string, acks: ReadonlyMap<string, number>) {
      if (acks.size === 0) return;
      const keys = k(env);
      const flat: (string | number)[] = [];
      for (const [id, v] of acks) flat.push(id, v);
      await guard('acks', () => redis.fsAcks(keys.acks, keys.seen, keys.channel, ...flat));
    },

    async agents(env: string): Promise<AgentRecord[]> {
      const keys = k(env);
      const [, agents, acks, seen, live] = await guard('agents', () => redis.fsAgents(keys.agents, keys.acks, keys.seen, keys.leases));
      const pairs = (flat: string[]) => {
        const m = new Map<string, string>();
        for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i]!, flat[i + 1]!);
        return m;
      };
      const ackMap = pairs(acks);
      const seenMap = pairs(seen);
      const liveSet = new Set(live);
      const out: AgentRecord[] = [];
      for (const [id, raw] of pairs(agents)) {
        const rec = parseAgentRecord(raw);
        out.push({
          id, applied: Number(ackMap.get(id) ?? 0), since: rec.since, connected: liveSet.has(id),
          lastSeenMs: Number(seenMap.get(id) ?? 0), replica: rec.replica,
        });
      }
      return out;
    },

    async subscribe(env: string, listener: EnvListener) {
      const channel = k(env).channel;
      let set = listeners.get(env);
      if (!set) {
        set = new Set();
        listeners.set(env, set);
        envOfChannel.set(channel, env);
        await sub.subscribe(channel);
      }
      set.add(listener);
      return async () => {
        const s = listeners.get(env);
        if (!s) return;
        s.delete(listener);
        if (s.size === 0) {
          listeners.delete(env);
          envOfChannel.delete(channel);
          await sub.unsubscribe(channel).catch(() => undefined);
        }
      };
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

function parseAgentRecord(raw: string): { since: number; replica: string | null } {
  try {
    const o = JSON.parse(raw) as { since?: unknown; replica?: unknown };
    return { since: typeof o.since === 'number' ? o.since : 0, replica: typeof o.replica === 'string' ? o.replica : null };
  } catch {
    return { since: 0, replica: null };
  }
}
