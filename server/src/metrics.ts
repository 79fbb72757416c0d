import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the metrics read at scrape time instead of being pushed on every event. */
export interface MetricSources {
  /** Per env: this replica's live acking sessions with their acked version. */
  sessions(): Iterable<{ env: string; agentId: string; acking: boolean; acked: number }>;
  /** Per env: the last version this replica's feed has seen. */
  feedHeads(): Iterable<{ env: string; known: number }>;
  gapsRepaired(): number;
  /** Monthly active users of the current UTC month, for the envs this replica serves. */
  mau(): Promise<Iterable<{ env: string; mau: number }>>;
  /** Snapshot reads running (rounds and HTTP reads, at most MAX_SNAPSHOT_STREAMS) and waiting for a slot. */
  snapshotStreams(): { running: number; queued: number };
  /** Whether this replica reaches its store (STORE_LOST_MS). */
  storeReachable(): boolean;
  /** Per source of the envs this replica serves or takes source writes for: when it last recorded a position. */
  sources(): Promise<Iterable<{ env: string; source: string; updatedAtMs: number }>>;
}

/**
 * The server's Prometheus metrics, one registry per server instance (no
 * module-level singletons: tests run several replicas in one process).
 * Names follow Prometheus conventions: `_total` counters, base units (seconds).
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly writes = new Counter({ name: 'factsync_writes_total', help: 'Writes that got a new version', labelNames: ['env'], registers: [this.registry] });
  readonly writeOps = new Counter({ name: 'factsync_write_ops_total', help: 'Operations in writes that got a new version', labelNames: ['env'], registers: [this.registry] });
  readonly idempotentReplays = new Counter({ name: 'factsync_idempotent_replays_total', help: 'Writes answered from an Idempotency-Key without applying', labelNames: ['env'], registers: [this.registry] });
  readonly writeDuration = new Histogram({
    name: 'factsync_write_duration_seconds', help: 'Time to apply a write in the store (without waiting for sync)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [this.registry],
  });
  readonly writeGroupSize = new Histogram({
    name: 'factsync_write_group_size', help: 'Writes sent to the store in one call (group commit: writes to an env that arrived while one was in flight)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [this.registry],
  });
  readonly writeBatchSize = new Histogram({
    name: 'factsync_write_batch_size', help: 'Writes per producer batch (POST /writes: an agent forwarding the local writes that queued behind its last request)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [this.registry],
  });
  readonly syncWaitDuration = new Histogram({
    name: 'factsync_sync_wait_duration_seconds', help: 'Time writers and sync calls waited for acks', labelNames: ['synced'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  readonly acks = new Counter({ name: 'factsync_acks_total', help: 'Acks received from agents on this replica', labelNames: ['env'], registers: [this.registry] });
  readonly resyncs = new Counter({ name: 'factsync_resyncs_total', help: 'Catch-up reads for agents on this replica, by source: a log page or a snapshot', labelNames: ['env', 'source'], registers: [this.registry] });
  readonly slowConsumers = new Counter({ name: 'factsync_slow_consumers_total', help: 'Sockets cut off because they did not read fast enough', registers: [this.registry] });
  readonly rejected = new Counter({ name: 'factsync_rejected_requests_total', help: 'HTTP requests and websocket sessions refused, by error code', labelNames: ['code'], registers: [this.registry] });
  readonly historyForks = new Counter({ name: 'factsync_history_forks_total', help: 'Agents or feeds whose history did not follow the store chain (invariant 9: the store lost or rewrote versions)', labelNames: ['env', 'where'], registers: [this.registry] });
  readonly replacedSessions = new Counter({ name: 'factsync_replaced_sessions_total', help: 'Sessions closed because a newer hello came with the same agent id', labelNames: ['env'], registers: [this.registry] });
  readonly redisErrors = new Counter({ name: 'factsync_redis_errors_total', help: 'Redis connection and command errors', registers: [this.registry] });

  constructor(sources: MetricSources, agentLabels = false) {
    collectDefaultMetrics({ register: this.registry, prefix: 'factsync_process_' });
    const reg = [this.registry];
    new Gauge({
      name: 'factsync_env_head_version', help: 'Last version of each env seen by this replica', labelNames: ['env'], registers: reg,
      collect() {
        this.reset();
        for (const f of sources.feedHeads()) this.set({ env: f.env }, f.known);
      },
    });
    new Gauge({
      name: 'factsync_mau', help: 'Distinct users checked this UTC month on any agent of the env (envs this replica serves)', labelNames: ['env'], registers: reg,
      async collect() {
        const rows = await sources.mau().catch(() => undefined);
        if (!rows) return; // the store is down: keep the last figures rather than report zero users
        this.reset();
        for (const r of rows) this.set({ env: r.env }, r.mau);
      },
    });
    new Gauge({
      name: 'factsync_source_lag_seconds',
      help: 'Seconds since each source recorded a position (a healthy source records one at least every heartbeat, even when idle)',
      labelNames: ['env', 'source'], registers: reg,
      async collect() {
        const rows = await sources.sources().catch(() => undefined);
        if (!rows) return;
        this.reset();
        const now = Date.now();
        for (const r of rows) this.set({ env: r.env, source: r.source }, Math.max(0, (now - r.updatedAtMs) / 1000));
      },
    });
    new Gauge({
      name: 'factsync_snapshot_streams', help: 'Snapshot reads of this replica: running (at most MAX_SNAPSHOT_STREAMS) and queued for a slot', labelNames: ['state'], registers: reg,
      collect() {
        const s = sources.snapshotStreams();
        this.set({ state: 'running' }, s.running);
        this.set({ state: 'queued' }, s.queued);
      },
    });
    new Gauge({
      name: 'factsync_store_reachable', help: '1 while this replica reaches its store; 0 once it has not answered for STORE_LOST_MS (its websockets are closed)', registers: reg,
      collect() {
        this.set(sources.storeReachable() ? 1 : 0);
      },
    });
    const heads = () => new Map([...sources.feedHeads()].map((f) => [f.env, f.known]));
    new Gauge({
      name: 'factsync_connected_agents', help: 'Acking agents connected to this replica', labelNames: ['env'], registers: reg,
      collect() {
        this.reset();
        const n = new Map<string, number>();
        for (const s of sources.sessions()) if (s.acking && s.env) n.set(s.env, (n.get(s.env) ?? 0) + 1);
        for (const [env, count] of n) this.set({ env }, count);
      },
    });
    // Agent ids are chosen by clients: as labels they would let any agent token mint series on the
    // unauthenticated /metrics (invariant 10). Per-agent lag only with METRICS_AGENT_LABELS=true.
    new Gauge({
      name: 'factsync_agent_lag_versions_max', help: 'Versions the furthest-behind connected agent of each env is behind its head', labelNames: ['env'], registers: reg,
      collect() {
        this.reset();
        const h = heads();
        const worst = new Map<string, number>();
        for (const s of sources.sessions()) {
          if (s.acking && s.env) worst.set(s.env, Math.max(worst.get(s.env) ?? 0, Math.max(0, (h.get(s.env) ?? 0) - s.acked)));
        }
        for (const [env, lag] of worst) this.set({ env }, lag);
      },
    });
    if (agentLabels) {
      new Gauge({
        name: 'factsync_agent_lag_versions', help: 'Versions each connected agent is behind the env head (METRICS_AGENT_LABELS=true)', labelNames: ['env', 'agent'], registers: reg,
        collect() {
          this.reset();
          const h = heads();
          for (const s of sources.sessions()) if (s.acking && s.env) this.set({ env: s.env, agent: s.agentId }, Math.max(0, (h.get(s.env) ?? 0) - s.acked));
        },
      });
    }
    new Counter({
      name: 'factsync_pubsub_gaps_repaired_total', help: 'Versions this replica read from the log because their doorbell was missing or skipped', registers: reg,
      collect() {
        this.reset();
        this.inc(sources.gapsRepaired());
      },
    });
  }
}
