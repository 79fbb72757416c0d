/**
 * P3's baseline: what a user could write by hand in an afternoon: fastify and
 * ioredis, a JSON schema for the body, a bearer token compared, and the same
 * WRITE script as factsync's store, one write per call. No fan-out, no group
 * commit, no idempotency, no metrics: the floor of an HTTP write path to Redis.
 */
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { WRITE } from '../../server/src/store/redis-scripts.js';

const redis = new Redis(process.env.REDIS_URL!);
redis.defineCommand('write', { lua: WRITE });
const run = redis as unknown as { write(numKeys: number, ...args: (string | number)[]): Promise<(number | string)[]> };
const token = `Bearer ${process.env.TOKEN ?? 'bench-admin'}`;
const prefix = process.env.KEY_PREFIX ?? 'hw';

const app = Fastify({ logger: false, bodyLimit: 8 * 1024 * 1024 });
const body = {
  type: 'object', required: ['ops'], additionalProperties: false,
  properties: {
    ops: {
      type: 'array', minItems: 1, maxItems: 20_000,
      items: {
        type: 'object', required: ['op', 'type', 'key'], additionalProperties: false,
        properties: { op: { enum: ['upsert', 'delete'] }, type: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,63}$' }, key: { type: 'string', minLength: 1, maxLength: 512 }, value: { type: 'object' } },
      },
    },
  },
} as const;

app.post<{ Params: { env: string }; Body: { ops: { op: 'upsert' | 'delete'; type: string; key: string; value?: object }[] } }>(
  '/v1/envs/:env/facts', { schema: { body } }, async (req, reply) => {
    if (req.headers.authorization !== token) return reply.status(401).send({ error: 'unauthorized' });
    const base = `${prefix}:{${req.params.env}}`;
    const ops = req.body.ops;
    const flat: string[] = [];
    for (const o of ops) flat.push(o.op === 'upsert' ? 'u' : 'd', `${o.type}:${o.key}`, o.op === 'upsert' ? JSON.stringify(o.value ?? {}) : '');
    const r = await run.write(3, `${base}:meta`, `${base}:log`, `${base}:state`, nanoid(12), 100_000, 86_400, 65_536, `${base}:events`, 1, 128,
      new Date().toISOString(), JSON.stringify(ops), '', 0, 0, flat.length, ...flat);
    return { version: Number(r[0]) };
  });

const url = await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.stdout.write(`${JSON.stringify({ msg: 'handwritten writer listening', url })}\n`);
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void app.close().then(() => redis.quit()).then(() => process.exit(0)));
