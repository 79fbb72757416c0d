import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import { FactsyncError, SyncStatus, parseWaitFor, parseWaitTimeout } from '@factsync/shared';
import { AgentInfo, EnvParams, ErrorBody, agentInfos } from './schemas.js';
import { abortOnClose, requireCap, type RouteContext } from './context.js';

/** `sync` (the long-poll of the waiting contract) and `agents`. */
export function syncRoutes(app: TypedApp, ctx: RouteContext): void {
  const read = requireCap(ctx, 'read');

  app.get('/v1/envs/:env/sync', {
    onRequest: read,
    schema: {
      summary: 'Sync status of a version; waits per timeout',
      params: EnvParams,
      querystring: Type.Object({
        version: Type.Integer({ minimum: 0 }),
        wait_for: Type.Optional(Type.String({ description: '"all" (default), an integer n, or a comma list of agent ids' })),
        timeout: Type.Optional(Type.String({ description: 'seconds: 0 = now (default), >0 = up to, <0 = until synced' })),
      }, { additionalProperties: false }),
      response: { 200: SyncStatus, '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req, reply) => {
    const { env } = req.params;
    const q = req.query;
    const waitFor = parseWaitFor(q.wait_for, { kind: 'all' });
    if (!waitFor.ok) throw new FactsyncError('invalid_request', waitFor.error);
    if (waitFor.value.kind === 'local') {
      throw new FactsyncError('invalid_request', 'wait_for=local is only meaningful on a pdp-agent; use "all", an integer n, or agent ids');
    }
    const timeout = parseWaitTimeout(q.timeout, 0);
    if (!timeout.ok) throw new FactsyncError('invalid_request', timeout.error);
    const head = await ctx.store.head(env);
    if (q.version > head.version) {
      throw new FactsyncError('invalid_request', `version ${q.version} does not exist yet: the head of env "${env}" is ${head.version}; ask for a version a write returned`, { head: head.version });
    }
    // An answer at once (timeout 0) holds nothing; a wait takes one of the token's slots.
    const release = timeout.value.ms === 0 ? undefined : ctx.waits.acquire(req.principal!.tokenIndex);
    try {
      return await ctx.control.wait(env, q.version, waitFor.value, timeout.value.ms, abortOnClose(reply));
    } finally {
      release?.();
    }
  });

  app.get('/v1/envs/:env/agents', {
    onRequest: read,
    schema: {
      summary: 'Agents of an env with their applied version and presence',
      params: EnvParams,
      response: { 200: Type.Array(AgentInfo), '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req) => {
    const { env } = req.params;
    return agentInfos(await ctx.store.agents(env));
  });
}
