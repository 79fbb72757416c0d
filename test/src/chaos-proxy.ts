import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy that cuts connections: on demand (`cutAll`) or at random moments,
 * optionally in the middle of a chunk (forwarding only part of it first), so
 * websocket frames are torn the way a flaky network tears them.
 */
export class ChaosProxy {
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private timer: NodeJS.Timeout | undefined;
  cuts = 0;
  port = 0;
  /** Lose the answer of the next n HTTP POSTs: the request reaches the server, the response never the client. */
  loseNextPostAnswers = 0;
  lostAnswers = 0;
  /** While true, what the server sends on websocket connections is held back (released on thaw): an agent that stops hearing. */
  private frozen = false;
  private readonly held: (() => void)[] = [];

  constructor(private targetPort: number, private readonly targetHost = '127.0.0.1') {
    this.server = createServer((client) => {
      const upstream = connect(this.targetPort, this.targetHost);
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      let tearNext = false;
      let loseAnswer = false;
      let first = true;
      let websocket = false;
      const forward = (from: Socket, to: Socket) => from.on('data', (chunk: Buffer) => {
        if (from === upstream && websocket && this.frozen) {
          this.held.push(() => to.write(chunk));
          return;
        }
        if (from === client && first) {
          first = false;
          websocket = /\r\nupgrade:\s*websocket/i.test(chunk.toString('latin1'));
          if (this.loseNextPostAnswers > 0 && chunk.subarray(0, 5).toString() === 'POST ') {
            this.loseNextPostAnswers--;
            loseAnswer = true;
          }
        }
        if (from === upstream && loseAnswer) {
          this.lostAnswers++;
          this.cut(pair);
          return;
        }
        if (tearNext && chunk.length > 1) {
          tearNext = false;
          to.write(chunk.subarray(0, Math.floor(Math.random() * (chunk.length - 1)) + 1));
          this.cut(pair);
          return;
        }
        to.write(chunk);
      });
      forward(client, upstream);
      forward(upstream, client);
      const end = () => this.cut(pair, false);
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      (pair as unknown as { tear: () => void }).tear = () => (tearNext = true);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    return `http://127.0.0.1:${this.port}`;
  }

  private cut(pair: [Socket, Socket], count = true): void {
    if (!this.pairs.delete(pair)) return;
    if (count) this.cuts++;
    pair[0].destroy();
    pair[1].destroy();
  }

  /** Hold back everything servers send on websocket connections (HTTP passes). */
  freezeWebsockets(): void {
    this.frozen = true;
  }

  thawWebsockets(): void {
    this.frozen = false;
    for (const write of this.held.splice(0)) write();
  }

  /** Send new connections to another port (a failover) and cut the current ones. */
  retarget(port: number): void {
    this.targetPort = port;
    this.cutAll();
  }

  cutAll(): void {
    for (const p of [...this.pairs]) this.cut(p);
  }

  /** Every `minMs`..`maxMs`, cut one random connection, half of the time mid-chunk. */
  startRandomCuts(minMs: number, maxMs: number): void {
    const tick = () => {
      const all = [...this.pairs];
      const p = all[Math.floor(Math.random() * all.length)];
      if (p) {
        if (Math.random() < 0.5) (p as unknown as { tear: () => void }).tear();
        else this.cut(p);
      }
      this.timer = setTimeout(tick, minMs + Math.random() * (maxMs - minMs));
    };
    this.timer = setTimeout(tick, minMs);
  }

  stopRandomCuts(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  async close(): Promise<void> {
    this.stopRandomCuts();
    this.cutAll();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
