import { createServer, type Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Change, Fact } from '@factsync/shared';

/**
 * A scripted stand-in for a factsync server, to see how an agent copes with a
 * server that misbehaves (skips a version, sends garbage): the one thing a real
 * server never does on purpose. It records every frame the agent sends.
 */
export class FakeServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  readonly received: unknown[] = [];
  sockets: WebSocket[] = [];
  /** What `GET /v1/envs/:env/changes?after=` answers: a page, or a status with a body (`raw`: text sent as it is, e.g. a proxy's HTML). */
  changes: (after: number) => { status: number; body?: unknown; raw?: string } = () => ({ status: 404, body: { error: 'not_found', message: 'none' } });
  snapshot: () => { version: number; epoch: string; id?: string; facts: Fact[] } | { raw: string } = () => ({ version: 0, epoch: 'fake', facts: [] });
  httpCalls: string[] = [];

  constructor(private readonly onHello: (ws: WebSocket, hello: { applied: number }) => void) {
    this.http = createServer((req, res) => {
      this.httpCalls.push(`${req.method} ${req.url}`);
      const u = new URL(req.url ?? '/', 'http://x');
      let answer: { status: number; body?: unknown; raw?: string };
      if (u.pathname.endsWith('/changes')) answer = this.changes(Number(u.searchParams.get('after')));
      else if (u.pathname.endsWith('/snapshot')) {
        const snap = this.snapshot();
        answer = 'raw' in snap ? { status: 200, raw: snap.raw } : { status: 200, body: snap };
      } else answer = { status: 404, body: { error: 'not_found', message: 'fake' } };
      if (answer.raw !== undefined) res.writeHead(answer.status, { 'content-type': 'text/html' }).end(answer.raw);
      else res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
    });
    this.wss = new WebSocketServer({ server: this.http, path: '/v1/ws' });
    this.wss.on('connection', (ws) => {
      this.sockets.push(ws);
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString()) as { type: string; applied: number };
        this.received.push(m);
        if (m.type === 'hello') this.onHello(ws, m);
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    const a = this.http.address();
    return `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  }

  static changesFrame(changes: Change[]): string {
    return JSON.stringify({ type: 'changes', changes });
  }

  acks(): number[] {
    return this.received.filter((m): m is { type: 'ack'; version: number } => (m as { type: string }).type === 'ack').map((m) => m.version);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.terminate();
    await new Promise<void>((r) => this.wss.close(() => this.http.close(() => r())));
  }
}
