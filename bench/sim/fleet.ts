/**
 * A fleet of simulated agents in one process, driven by the bench over IPC.
 * `factsync` agents are real websockets that speak the protocol and apply with
 * the agent's own Applier and LocalStore, then ack; `sio` clients are
 * socket.io-client sockets that apply to a Map and ack. Idle mode connects and
 * does nothing else (memory scenario).
 */
import WebSocket from 'ws';
import { io as sioConnect, type Socket } from 'socket.io-client';
import { Applier, LocalStore } from '@factsync/pdp-agent';
import { SnapshotAssembly, parseServerMessage, type Change } from '@factsync/shared';

interface FleetConfig {
  kind: 'factsync' | 'sio';
  urls: string[];
  count: number;
  env: string;
  token: string;
  idPrefix: string;
  idle?: boolean;
  /** Spread the agents over this many envs (`${env}-${i % envs}`) instead of one. */
  envs?: number;
  /** PEM of a CA to trust, for servers that serve TLS (wss://). */
  ca?: string;
  /** Scoped agents: agent i holds tenant `t${(offset + i) % scopes}` only (hello.tenants). */
  scopes?: number;
  offset?: number;
}

const cfg = JSON.parse(process.argv[2]!) as FleetConfig;
let applied = 0; // versions (or messages) applied, summed over the fleet
let ready = 0;
const closers: (() => void)[] = [];
const send = (m: unknown) => process.send?.(m);

function factsyncAgent(i: number): void {
  const url = cfg.urls[i % cfg.urls.length]!.replace(/^http/, 'ws') + '/v1/ws';
  const store = new LocalStore();
  // Versions applied: a scoped agent gets a run of versions with nothing for it as one change.
  const applier = new Applier(store, (c) => void (applied += c.version - (c.from ?? c.version) + 1));
  let acked = 0;
  let isReady = false;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${cfg.token}` }, perMessageDeflate: false, ...(cfg.ca ? { ca: cfg.ca } : {}) });
  closers.push(() => ws.terminate());
  ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', env: cfg.envs ? `${cfg.env}-${i % cfg.envs}` : cfg.env, agent_id: `${cfg.idPrefix}-${i}`, applied: 0, ack: true,
    ...(cfg.scopes ? { tenants: [`t${((cfg.offset ?? 0) + i) % cfg.scopes}`] } : {}) })));
  ws.on('error', (e) => send({ type: 'error', message: e.message }));
  const assembly = new SnapshotAssembly();
  ws.on('message', (data) => {
    if (cfg.idle) {
      if (!isReady && (isReady = true)) ready++;
      return;
    }
    const m = parseServerMessage(data.toString());
    if (!m.ok) return;
    if (m.value.type === 'snapshot') {
      // A snapshot may span frames (`last: false` on all but the last): applied once complete.
      const s = assembly.add(m.value);
      if (!s) return;
      applier.snapshot(s.version, s.epoch, s.facts, s.id, s.replay);
      if (!isReady && (isReady = true)) ready++;
    } else if (m.value.type === 'changes') applier.offer(m.value.changes as Change[]);
    // A real agent defers its ack by one setImmediate to coalesce a burst; alone in its process
    // that fires right after this frame. Here 500 agents share an event loop, where the same
    // deferral would wait for every other agent's frame first, so the fleet acks per frame.
    if (store.version > acked) {
      acked = store.version;
      ws.send(JSON.stringify({ type: 'ack', version: acked }));
    }
  });
}

function sioClient(i: number): void {
  const state = new Map<string, unknown>();
  const socket: Socket = sioConnect(cfg.urls[i % cfg.urls.length]!, { transports: ['websocket'], reconnection: false });
  closers.push(() => socket.close());
  socket.on('connect', () => {
    ready++;
  });
  socket.on('connect_error', (e) => send({ type: 'error', message: e.message }));
  socket.on('change', (change: { id: number; ops: { key: string; value: unknown }[] }) => {
    if (cfg.idle) return;
    for (const op of change.ops) state.set(op.key, op.value);
    applied++;
    socket.emit('ack', change.id);
  });
}

async function main(): Promise<void> {
  // Connect in waves so the servers see a realistic ramp, not one SYN flood.
  for (let i = 0; i < cfg.count; i++) {
    if (cfg.kind === 'factsync') factsyncAgent(i);
    else sioClient(i);
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20));
  }
  const t = setInterval(() => {
    if (ready >= cfg.count) {
      clearInterval(t);
      send({ type: 'ready' });
    }
  }, 20);
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stats') send({ type: 'stats', applied, ready });
    if (m.type === 'close') {
      for (const c of closers) c();
      setTimeout(() => process.exit(0), 100);
    }
  });
}

void main();
