import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Decider } from '../decide/decider.js';
import type { LocalStore } from '../local-store.js';
import type { ForwardOps } from '../write-api.js';
import { registerPermitFactsRoutes } from './facts-routes.js';
import { registerPermitSchemaRoutes } from './schema-routes.js';

/** The organisation and project the agent reports to the SDK; the environment is the agent's env. */
export const PERMIT_ORGANIZATION = 'factsync';
export const PERMIT_PROJECT = 'default';

export interface PermitDeps {
  env: string;
  store: LocalStore;
  decider: Decider;
  /** The ids every `*Read` answer of the SDK carries. */
  meta(req: FastifyRequest): Record<string, string>;
  /** A user's tenant roles, as Permit's UserRead lists them. */
  rolesOf(user: string): { role: string; tenant: string }[];
}

/**
 * Permit SDK compatibility (DESIGN.md): the unchanged `permitio` SDK, with
 * `pdp` and `apiUrl` both set to this agent and `proxyFactsViaPdp: true`, works
 * against it. A thin adapter: Permit's paths and bodies in, the agent's own
 * writes and decisions underneath, so the two APIs cannot drift.
 */
export function registerPermitRoutes(app: FastifyInstance, forward: ForwardOps, o: { env: string; store: LocalStore; decider: Decider }): void {
  const created = new Date().toISOString();
  const deps: PermitDeps = {
    ...o,
    meta: () => ({ organization_id: PERMIT_ORGANIZATION, project_id: PERMIT_PROJECT, environment_id: o.env, created_at: created, updated_at: new Date().toISOString() }),
    rolesOf: (user) => [...(o.decider.index.assignments.get(user) ?? [])].flatMap(([tenant, roles]) => [...roles].map((role) => ({ role, tenant }))),
  };

  // The SDK asks this before its first API call (and after any failure); its ids become the {proj}/{env} of the paths below, which are not checked.
  app.get('/v2/api-key/scope', {
    schema: {
      summary: 'The scope of the token, as Permit\'s API answers it (Permit)', tags: ['permit'],
      response: { 200: Type.Object({ organization_id: Type.String(), project_id: Type.String(), environment_id: Type.String() }) },
    },
  }, async () => ({ organization_id: PERMIT_ORGANIZATION, project_id: PERMIT_PROJECT, environment_id: o.env }));

  registerPermitFactsRoutes(app, forward, deps);
  registerPermitSchemaRoutes(app, forward, deps);
}
