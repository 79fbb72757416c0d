import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface AgentMetricSources {
  applied(): number;
  head(): number;
  connected(): boolean;
  stale(): boolean;
  facts(): number;
  reconnects(): number;
}

/** The agent's Prometheus metrics, one registry per agent instance. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly applyDuration = new Histogram({
    name: 'factsync_agent_apply_duration_seconds', help: 'Time to apply one frame (snapshot or batch of changes) to the local store',
    labelNames: ['kind'], buckets: [0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [this.registry],
  });
  readonly changesApplied = new Counter({ name: 'factsync_agent_changes_applied_total', help: 'Versions applied one by one', registers: [this.registry] });
  readonly snapshots = new Counter({ name: 'factsync_agent_snapshots_total', help: 'Snapshots loaded', registers: [this.registry] });
  readonly historyForks = new Counter({ name: 'factsync_agent_history_forks_total', help: 'Changes that did not follow the chain of what was applied (invariant 9): resynced from a snapshot', registers: [this.registry] });
  readonly invalidFrames = new Counter({ name: 'factsync_agent_invalid_frames_total', help: 'Frames from the server that did not parse (the socket is dropped and retried with backoff; the log names version and op)', registers: [this.registry] });
  readonly usageRefused = new Counter({ name: 'factsync_agent_usage_refused_total', help: 'Usage (MAU) reports the server refused for good: dropped, never re-sent', registers: [this.registry] });
  readonly gaps = new Counter({ name: 'factsync_agent_gaps_total', help: 'Gaps detected in the received versions (each repaired from the log or a snapshot)', registers: [this.registry] });
  readonly forwardedWrites = new Counter({ name: 'factsync_agent_forwarded_writes_total', help: 'Writes forwarded to the server, by outcome', labelNames: ['outcome'], registers: [this.registry] });
  readonly writeDuration = new Histogram({
    name: 'factsync_agent_write_duration_seconds', help: 'Time from receiving a write to answering it, including the wait', labelNames: ['wait_for'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });

  readonly checksLimited = new Counter({ name: 'factsync_agent_checks_limited_total', help: 'Checks denied because deciding them took more than their work budget (MAX_CHECK_WORK steps): the policy is too heavy', registers: [this.registry] });
  readonly checks = new Counter({ name: 'factsync_agent_checks_total', help: 'Permission checks decided, by answer', labelNames: ['allow'], registers: [this.registry] });

  constructor(s: AgentMetricSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'factsync_agent_process_' });
    const reg = [this.registry];
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: reg, collect() { this.set(read()); } });
    gauge('factsync_agent_applied_version', 'Last version applied locally', s.applied);
    gauge('factsync_agent_head_version', 'Last version known to exist on the server', s.head);
    gauge('factsync_agent_lag_versions', 'Versions known to exist but not yet applied', () => Math.max(0, s.head() - s.applied()));
    gauge('factsync_agent_connected', '1 while the websocket to a server is open', () => (s.connected() ? 1 : 0));
    gauge('factsync_agent_stale', '1 while answers come from a state not caught up with a live server (offline, or catching up)', () => (s.stale() ? 1 : 0));
    gauge('factsync_agent_facts', 'Facts in the local store', s.facts);
    new Counter({ name: 'factsync_agent_reconnects_total', help: 'Reconnect attempts to the server', registers: reg, collect() { this.reset(); this.inc(s.reconnects()); } });
  }
}
