/**
 * The baseline: a Socket.IO node with @socket.io/redis-adapter. `POST /publish`
 * broadcasts one change to every client of every node through the adapter;
 * with `expect=N` it answers once N clients acked it, acks from other nodes
 * arriving through a Redis channel, the way factsync's acks do.
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';

const port = Number(process.env.PORT ?? 0);
const redisUrl = process.env.REDIS_URL!;
const pub = new Redis(redisUrl);
const sub = pub.duplicate();
const ackPub = new Redis(redisUrl);
const ackSub = new Redis(redisUrl);
const ACKS = `sio-bench-acks-${process.env.BENCH_ID ?? 'x'}`;

const waiting = new Map<number, { expect: number; got: number; done: () => void }>();
let nextId = Number(process.env.NODE_INDEX ?? 0) * 1e9;
const localAcks = new Map<number, number>();
let flushScheduled = false;

await ackSub.subscribe(ACKS);
ackSub.on('message', (_c, msg: string) => {
  for (const [id, n] of Object.entries(JSON.parse(msg) as Record<string, number>)) {
    const w = waiting.get(Number(id));
    if (!w) continue;
    w.got += n;
    if (w.got >= w.expect) {
      waiting.delete(Number(id));
      w.done();
    }
  }
});

const http = createServer((req, res) => {
  if (req.method !== 'POST' || !req.url?.startsWith('/publish')) {
    res.writeHead(404).end();
    return;
  }
  const expect = Number(new URL(req.url, 'http://x').searchParams.get('expect') ?? 0);
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    const id = nextId++;
    const { ops } = JSON.parse(body) as { ops: unknown[] };
    const answer = () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id }));
    if (expect > 0) waiting.set(id, { expect, got: 0, done: answer });
    io.emit('change', { id, ops });
    if (expect === 0) answer();
  });
});
const io = new Server(http, { transports: ['websocket'], serveClient: false, adapter: createAdapter(pub, sub) });
io.on('connection', (socket) => {
  socket.on('ack', (id: number) => {
    localAcks.set(id, (localAcks.get(id) ?? 0) + 1);
    if (flushScheduled) return;
    flushScheduled = true;
    // Coalesced per tick, like factsync's ack batcher.
    setImmediate(() => {
      flushScheduled = false;
      const batch = Object.fromEntries(localAcks);
      localAcks.clear();
      void ackPub.publish(ACKS, JSON.stringify(batch));
    });
  });
});
http.listen(port, '127.0.0.1', () => {
  const a = http.address();
  process.stdout.write(`${JSON.stringify({ msg: 'sio node listening', url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : port}` })}\n`);
});
process.on('SIGTERM', () => {
  io.close();
  for (const r of [pub, sub, ackPub, ackSub]) r.disconnect();
  process.exit(0);
});
