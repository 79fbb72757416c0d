import WebSocket from 'ws';
import type { ServerMessage } from '@factsync/shared';
import { waitUntil } from './wait.js';

/**
 * A hand-driven protocol client over a real socket: it records every frame and
 * acks only when told, so tests can hold an agent back or misbehave on purpose.
 */
export class RawAgent {
  readonly messages: ServerMessage[] = [];
  closed: { code: number; reason: string } | undefined;
  /** Ack every changes frame as it arrives, like a healthy agent. */
  autoAck = false;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString()) as ServerMessage;
      this.messages.push(m);
      if (this.autoAck && m.type === 'changes') this.ack(m.changes[m.changes.length - 1]!.version);
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  }

  static async connect(serverUrl: string, token: string | undefined, hello?: Record<string, unknown>): Promise<RawAgent> {
    const ws = new WebSocket(`${serverUrl.replace(/^http/, 'ws')}/v1/ws`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    const a = new RawAgent(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_q, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
    if (hello) a.send(hello);
    return a;
  }

  send(m: unknown): void {
    this.ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  }

  ack(version: number): void {
    this.send({ type: 'ack', version });
  }

  /** Highest version received (snapshot or changes); -1 before the first snapshot or changes frame. */
  get received(): number {
    let v = -1;
    for (const m of this.messages) {
      const changes = m.type === 'changes' ? m.changes : m.type === 'snapshot' ? m.changes : undefined;
      if (m.type === 'snapshot') v = Math.max(v, m.version);
      if (changes && changes.length > 0) v = Math.max(v, changes[changes.length - 1]!.version);
    }
    return v;
  }

  async waitReceived(version: number, timeoutMs = 10_000): Promise<void> {
    await waitUntil(() => this.received >= version, `raw agent to receive ${version}`, timeoutMs, 5);
  }

  async waitClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    return waitUntil(() => this.closed, 'socket close', timeoutMs, 5);
  }

  /** Stop reading the socket: what the server sends piles up in kernel buffers, then in the server's. */
  pause(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  resume(): void {
    (this.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  }

  /** The last version reached without a gap from the first snapshot (or from `from`), or -1 on a gap. */
  contiguousFrom(from: number): number {
    let v = from;
    for (const m of this.messages) {
      // A snapshot resets to its base, except frames that continue its replay (changes after the first).
      if (m.type === 'snapshot' && (!m.changes?.length || m.changes[0]!.version === m.version + 1)) v = m.version;
      const changes = m.type === 'changes' ? m.changes : m.type === 'snapshot' ? m.changes ?? [] : [];
      for (const c of changes) {
        if (c.version <= v) continue;
        if (c.version !== v + 1) return -1;
        v = c.version;
      }
    }
    return v;
  }

  contiguous(): number {
    return this.contiguousFrom(0);
  }

  /** The chain id of version `v` as received (what a hello that resumes at `v` must name). */
  idOf(v: number): string | null {
    for (const m of this.messages) {
      if (m.type === 'snapshot' && m.version === v && m.id) return m.id;
      const changes = m.type === 'changes' ? m.changes : m.type === 'snapshot' ? m.changes ?? [] : [];
      for (const c of changes) if (c.version === v) return c.id;
    }
    return null;
  }

  close(): void {
    this.ws.terminate();
  }
}
