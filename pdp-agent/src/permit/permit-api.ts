import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ForwardOps } from '../write-api.js';
import type { PermitDeps } from './deps.js';
import { registerPermitFactsReads } from './facts-reads.js';
import { registerPermitFactsRoutes } from './facts-routes.js';
import { registerPermitPdpRoutes } from './pdp-routes.js';
import { registerPermitSchemaReads } from './schema-reads.js';
import { registerPermitSchemaRoutes } from './schema-routes.js';

const Uuid = Type.String({ format: 'uuid' });

/**
 * Permit SDK compatibility: the unchanged SDKs (Node, Python, Go, Java), with
 * `pdp` and the API URL both set to this agent and facts proxied via the PDP,
 * work against it. A thin adapter: Permit's paths and bodies in, the agent's
 * own writes, reads and decisions underneath, so the two APIs cannot drift.
 * One route table, under both prefixes the SDKs use.
 */
export async function registerPermitRoutes(app: FastifyInstance, forward: ForwardOps, d: PermitDeps): Promise<void> {
  // The SDK asks this before its first API call; the Python SDK requires UUIDs. Its ids become the {proj}/{env} of the paths below, which are not checked.
  app.get('/v2/api-key/scope', {
    schema: {
      summary: 'The scope of the token, as Permit\'s API answers it (Permit)', tags: ['permit'],
      response: { 200: Type.Object({ organization_id: Uuid, project_id: Uuid, environment_id: Uuid }) },
    },
  }, async () => d.views.scope);

  // Node and Go send facts to /v2/facts/:proj/:env/…; Python and Java, through the PDP, to /facts/….
  for (const prefix of ['/facts', '/v2/facts/:proj/:env']) {
    await app.register(async (scope) => {
      registerPermitFactsRoutes(scope, forward, d);
      registerPermitFactsReads(scope, d);
    }, { prefix });
  }
  await app.register(async (scope) => {
    registerPermitSchemaRoutes(scope, forward, d);
    registerPermitSchemaReads(scope, d);
  }, { prefix: '/v2/schema/:proj/:env' });
  registerPermitPdpRoutes(app, d);
}
