import type { FastifyInstance } from 'fastify';
import type { ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { FactsyncError } from '@factsync/shared';
import { streamEnvStatus } from '../status/status-stream.js';
import { EnvParams, ErrorBody } from './schemas.js';
import { requireCap, type RouteContext } from './context.js';

const PAGE = readFileSync(new URL('../status/page.html', import.meta.url), 'utf8');

/** The status page (`/`), the env list it starts from, and its live stream. Returns a closer for shutdown. */
export function statusRoutes(app: FastifyInstance, ctx: RouteContext): { closeStreams(): void } {
  const streams = new Set<ServerResponse>();
  const perToken = new Map<number, number>();

  app.get('/', { schema: { summary: 'Live status page (HTML)', hide: true } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(PAGE));

  app.get('/v1/envs', {
    schema: { summary: 'Envs that have data (those this token may read)', response: { 200: Type.Object({ envs: Type.Array(Type.String()) }), '4xx': ErrorBody } },
  }, async (req) => {
    const p = ctx.auth.authenticate(req.headers.authorization);
    if (p.env !== '*') return { envs: [p.env] };
    return { envs: await ctx.store.envs(1000) };
  });

  app.get('/v1/envs/:env/status/stream', {
    onRequest: requireCap(ctx.auth, 'read'),
    schema: { summary: 'Server-sent events: head and agents of an env, as they change', params: EnvParams },
  }, async (req, reply) => {
    const { env } = req.params as { env: string };
    // Streams per token are limited like websockets (MAX_CONNECTIONS_PER_TOKEN): a token cannot hold unbounded open responses.
    const token = ctx.auth.authenticate(req.headers.authorization).tokenIndex;
    const open = perToken.get(token) ?? 0;
    if (open >= ctx.config.maxStreamsPerToken) {
      throw new FactsyncError('too_many_connections', `this token already has ${open} status streams on this replica (MAX_STREAMS_PER_TOKEN)`);
    }
    perToken.set(token, open + 1);
    reply.hijack();
    streams.add(reply.raw);
    reply.raw.on('close', () => {
      streams.delete(reply.raw);
      const n = (perToken.get(token) ?? 1) - 1;
      if (n <= 0) perToken.delete(token);
      else perToken.set(token, n);
    });
    await streamEnvStatus(ctx.store, env, reply.raw, req.log, { minIntervalMs: 250, maxIntervalMs: 2000, maxBufferedBytes: ctx.config.streamMaxBufferedBytes });
  });

  return {
    closeStreams() {
      for (const s of streams) s.end();
      streams.clear();
    },
  };
}
