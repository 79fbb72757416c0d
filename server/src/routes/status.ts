import type { TypedApp } from '@factsync/shared/http-app';
import type { ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { streamEnvStatus } from '../status/status-stream.js';
import { EnvParams, ErrorBody } from './schemas.js';
import { requireCap, type RouteContext } from './context.js';
import { TokenSlots } from '../token-slots.js';

const PAGE = readFileSync(new URL('../status/page.html', import.meta.url), 'utf8');
const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#3451b2"/>'
  + '<path d="M9 23V9h12M9 16h9" stroke="#fff" stroke-width="3.2" fill="none" stroke-linecap="round"/></svg>';

/** The status page (`/`), the env list it starts from, and its live stream. Returns a closer for shutdown. */
export function statusRoutes(app: TypedApp, ctx: RouteContext): { closeStreams(): void } {
  const streams = new Set<ServerResponse>();
  const perToken = new TokenSlots(ctx.config.maxStreamsPerToken, 'status streams', 'MAX_STREAMS_PER_TOKEN');

  app.get('/', { schema: { summary: 'Live status page (HTML)', hide: true } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(PAGE));
  // Browsers ask for it on every page; an SVG serves every size.
  app.get('/favicon.ico', { schema: { summary: 'The status page\'s icon', hide: true } }, async (_req, reply) =>
    reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').send(ICON));

  app.get('/v1/envs/:env/status/stream', {
    onRequest: requireCap(ctx, 'read'),
    schema: { summary: 'Server-sent events: head and agents of an env, as they change', params: EnvParams },
  }, async (req, reply) => {
    const { env } = req.params;
    // A token cannot hold unbounded open responses.
    const release = perToken.acquire(req.principal!.tokenIndex);
    reply.hijack();
    streams.add(reply.raw);
    reply.raw.on('close', () => {
      streams.delete(reply.raw);
      release();
    });
    await streamEnvStatus(ctx.store, env, reply.raw, req.log, { minIntervalMs: 250, maxIntervalMs: 2000, maxBufferedBytes: ctx.config.streamMaxBufferedBytes, storeKind: ctx.store.kind });
  });

  return {
    closeStreams() {
      for (const s of streams) s.end();
      streams.clear();
    },
  };
}
