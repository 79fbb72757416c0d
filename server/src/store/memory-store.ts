import { nanoid } from 'nanoid';
import { factField, splitFactField } from '@factsync/shared';
import { encodeAckEvent, encodeChangeEvent, parseEnvEvent } from './events.js';
import type {
  AgentConnect, AgentRecord, ChangesPage, EnvHead, EnvListener, FactStore, RawChange, Snapshot, WriteInput, WriteOutcome,
} from './fact-store.js';

export interface MemoryStoreOptions {
  logRetention: number;
  idempotencyTtlSeconds: number;
  inlineChangeBytes: number;
  now?: () => number;
}

interface EnvState {
  version: number;
  epoch: string | null;
  log: RawChange[];
  state: Map<string, string>;
  idem: Map<string, { version: number; expiresMs: number }>;
  agents: Map<string, { since: number; conn: string; replica: string }>;
  acks: Map<string, number>;
  seen: Map<string, number>;
  leases: Map<string, number>;
}

/**
 * The embedded store: one process, no Redis. Every method runs synchronously
 * inside one call, which gives it the same atomicity as the Redis scripts, and
 * events travel through the same wire encoding as Redis pub/sub, delivered
 * asynchronously like a real doorbell.
 */
export function createMemoryStore(opts: MemoryStoreOptions): FactStore {
  const now = opts.now ?? Date.now;
  const envs = new Map<string, EnvState>();
  const listeners = new Map<string, Set<EnvListener>>();
  let closed = false;

  const envOf = (env: string): EnvState => {
    let s = envs.get(env);
    if (!s) {
      s = { version: 0, epoch: null, log: [], state: new Map(), idem: new Map(), agents: new Map(), acks: new Map(), seen: new Map(), leases: new Map() };
      envs.set(env, s);
    }
    return s;
  };
  const epochOf = (s: EnvState): string => (s.epoch ??= nanoid(12));

  const publish = (env: string, message: string) => {
    const parsed = parseEnvEvent(message);
    if (!parsed.ok) throw new Error(`memory store produced a bad event: ${parsed.error}`);
    const set = listeners.get(env);
    if (!set || set.size === 0) return;
    const targets = [...set];
    queueMicrotask(() => {
      for (const l of targets) l(parsed.value);
    });
  };

  /** Index of the first log entry with version > after (binary search: versions are dense and sorted). */
  const firstAfter = (log: RawChange[], after: number): number => {
    let lo = 0, hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (log[mid]!.version <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  return {
    kind: 'memory',

    async write(env: string, input: WriteInput): Promise<WriteOutcome> {
      const s = envOf(env);
      const t = now();
      if (input.idempotencyKey !== undefined) {
        const prev = s.idem.get(input.idempotencyKey);
        if (prev && prev.expiresMs > t) return { version: prev.version, epoch: epochOf(s), duplicate: true };
      }
      const epoch = epochOf(s);
      const v = ++s.version;
      for (const op of input.ops) {
        const field = factField(op.type, op.key);
        if (op.op === 'upsert') s.state.set(field, JSON.stringify(op.value));
        else s.state.delete(field);
      }
      const json = `{"version":${v},"ts":"${input.ts}","ops":${JSON.stringify(input.ops)}}`;
      s.log.push({ version: v, json });
      const excess = s.log.length - opts.logRetention;
      if (excess > 0) s.log.splice(0, excess);
      if (input.idempotencyKey !== undefined) {
        s.idem.set(input.idempotencyKey, { version: v, expiresMs: t + opts.idempotencyTtlSeconds * 1000 });
        // Redis expires these keys by itself; here, sweep now and then so a long-running dev server does not grow.
        if (s.idem.size % 1024 === 0) for (const [k, e] of s.idem) if (e.expiresMs <= t) s.idem.delete(k);
      }
      publish(env, encodeChangeEvent(v, epoch, json.length <= opts.inlineChangeBytes ? json : undefined));
      return { version: v, epoch, duplicate: false };
    },

    async head(env: string): Promise<EnvHead> {
      const s = envs.get(env);
      return { version: s?.version ?? 0, epoch: s?.epoch ?? null };
    },

    async ensureEpoch(env: string): Promise<EnvHead> {
      const s = envOf(env);
      return { version: s.version, epoch: epochOf(s) };
    },

    async changes(env: string, after: number, limit: number): Promise<ChangesPage> {
      const s = envs.get(env);
      const head = s?.version ?? 0;
      const epoch = s?.epoch ?? null;
      if (!s || after >= head) return { truncated: false, head, epoch, changes: [] };
      const i = firstAfter(s.log, after);
      const changes = s.log.slice(i, i + limit);
      if (changes.length === 0 || changes[0]!.version !== after + 1) return { truncated: true, head, epoch };
      return { truncated: false, head, epoch, changes };
    },

    async snapshot(env: string): Promise<Snapshot> {
      const s = envs.get(env);
      if (!s) return { version: 0, epoch: null, facts: [] };
      const facts = [...s.state].map(([field, valueJson]) => ({ ...splitFactField(field), valueJson }));
      return { version: s.version, epoch: s.epoch, facts };
    },

    async connectAgent(env: string, c: AgentConnect) {
      const s = envOf(env);
      const t = now();
      const epoch = epochOf(s);
      s.agents.set(c.id, { since: s.version, conn: c.conn, replica: c.replica });
      s.leases.set(c.id, t + c.leaseMs);
      s.seen.set(c.id, t);
      publish(env, JSON.stringify({ t: 'presence', id: c.id, connected: true, conn: c.conn, since: s.version }));
      return { version: s.version, since: s.version, epoch };
    },

    async disconnectAgent(env: string, id: string, conn: string) {
      const s = envs.get(env);
      const rec = s?.agents.get(id);
      if (!s || !rec || rec.conn !== conn) return;
      s.leases.delete(id);
      s.seen.set(id, now());
      publish(env, JSON.stringify({ t: 'presence', id, connected: false, conn }));
    },

    async renewLeases(env: string, ids: readonly string[], leaseMs: number) {
      const s = envs.get(env);
      if (!s) return;
      const until = now() + leaseMs;
      for (const id of ids) if (s.leases.has(id)) s.leases.set(id, until);
    },

    async recordAcks(env: string, acks: ReadonlyMap<string, number>) {
      if (acks.size === 0) return;
      const s = envOf(env);
      const t = now();
      for (const [id, v] of acks) {
        if (v > (s.acks.get(id) ?? -1)) s.acks.set(id, v);
        s.seen.set(id, t);
      }
      publish(env, encodeAckEvent(acks));
    },

    async agents(env: string): Promise<AgentRecord[]> {
      const s = envs.get(env);
      if (!s) return [];
      const t = now();
      return [...s.agents].map(([id, rec]) => ({
        id, applied: s.acks.get(id) ?? 0, since: rec.since, connected: (s.leases.get(id) ?? 0) >= t,
        lastSeenMs: s.seen.get(id) ?? 0, replica: rec.replica,
      }));
    },

    async subscribe(env: string, listener: EnvListener) {
      let set = listeners.get(env);
      if (!set) listeners.set(env, (set = new Set()));
      set.add(listener);
      return async () => {
        listeners.get(env)?.delete(listener);
      };
    },

    onEventsReset() {
      // An in-process bus cannot lose its subscription.
    },

    async envs(limit: number) {
      return [...envs.keys()].sort().slice(0, limit);
    },

    async ping() {
      if (closed) throw new Error('memory store is closed');
    },

    async close() {
      closed = true;
      listeners.clear();
    },
  };
}
