import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import {
  BulkCheckRequest, CheckAnswer, CheckRequest, FactsyncError, UserPermissionsRequest, normalizeCheck, normalizeUser, parseResourceRef,
  parseWaitTimeout, type Check,
} from '@factsync/shared';
import type { Decider } from './decide/decider.js';
import type { AgentMetrics } from './metrics.js';
import type { UsageTracker } from './usage-tracker.js';

export interface CheckApiDeps {
  decider: Decider;
  usage: UsageTracker;
  metrics: AgentMetrics;
  log: Logger;
  decisionLog: boolean;
  defaultWaitSeconds: number;
  waitApplied(version: number, timeoutMs: number | null, signal?: AbortSignal): Promise<boolean>;
  applied(): number;
}

const ErrorBody = Type.Object({ error: Type.String(), message: Type.String() }, { additionalProperties: true });
const AtLeast = Type.Object({ at_least: Type.Optional(Type.Integer({ minimum: 0, description: 'decide only once this agent applied this version' })) });
const WaitHeader = Type.Object({ 'x-wait-timeout': Type.Optional(Type.String({ description: 'seconds to wait for at_least (default DEFAULT_WAIT_SECONDS)' })) });
export const VERSION_HEADER = 'x-factsync-version';
/** What a read that may wait for `?at_least` needs of its request (every route that declares AtLeast has it). */
export interface ReadRequest { query: { at_least?: number }; headers: IncomingHttpHeaders }

/**
 * `?at_least=V`: read your writes. Resolves once this agent applied V, or
 * throws 504 not_synced when X-Wait-Timeout passes first.
 */
export async function awaitAtLeast(
  req: ReadRequest, reply: { raw: ServerResponse }, d: Pick<CheckApiDeps, 'waitApplied' | 'applied' | 'defaultWaitSeconds'>,
): Promise<void> {
  const { at_least } = req.query;
  if (at_least === undefined || at_least <= d.applied()) return;
  const t = parseWaitTimeout(req.headers['x-wait-timeout'] as string | undefined, d.defaultWaitSeconds);
  if (!t.ok) throw new FactsyncError('invalid_request', `X-Wait-Timeout: ${t.error}`);
  const ac = new AbortController();
  reply.raw.once('close', () => !reply.raw.writableFinished && ac.abort());
  if (!(await d.waitApplied(at_least, t.value.ms, ac.signal))) {
    throw new FactsyncError('not_synced', `this agent has applied version ${d.applied()}, not yet ${at_least}`, { applied: d.applied() });
  }
}

/**
 * Permission checks (docs/api.md, "Decisions on the agent"): `/allowed`,
 * `/allowed/bulk`, `/user-permissions`, in Permit's shapes. Each answer says
 * the version it was decided at (in the body where Permit's shape has room,
 * and always in X-Factsync-Version).
 */
export function registerCheckRoutes(app: TypedApp, d: CheckApiDeps): void {
  const parse = (c: CheckRequest, where: string): Check => {
    const n = normalizeCheck(c);
    if (!n.ok) throw new FactsyncError('invalid_request', `${where}${n.error}`);
    return n.value;
  };
  // Label children bound once: a check must not hash a label set (it costs about what the check does).
  const allowed = d.metrics.checks.labels({ allow: 'true' });
  const denied = d.metrics.checks.labels({ allow: 'false' });
  const decide = (c: Check, explain: boolean) => {
    d.usage.record(c.user.key);
    const r = d.decider.check(c, explain || d.decisionLog);
    (r.allow ? allowed : denied).inc();
    if (d.decisionLog) {
      d.log.info({ decision: { user: c.user.key, action: c.action, resource: c.resource, tenant: d.decider.tenantOf(c), allow: r.allow, version: r.version, reason: r.reason } }, 'decision');
    }
    return r;
  };

  app.post('/allowed', {
    schema: {
      summary: 'Is the user allowed to do the action on the resource?',
      querystring: AtLeast, headers: WaitHeader, body: CheckRequest,
      response: { 200: CheckAnswer, '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req, reply) => {
    await awaitAtLeast(req, reply, d);
    const body = req.body;
    const r = decide(parse(body, ''), body.debug === true);
    void reply.header(VERSION_HEADER, r.version);
    return { allow: r.allow, result: r.allow, version: r.version, ...(body.debug ? { reason: r.reason } : {}) };
  });

  app.post('/allowed/bulk', {
    schema: {
      summary: 'Several checks, decided at one version',
      querystring: AtLeast, headers: WaitHeader, body: BulkCheckRequest,
      response: {
        200: Type.Object({ allow: Type.Array(Type.Object({ allow: Type.Boolean(), result: Type.Boolean(), reason: Type.Optional(Type.String()) })), version: Type.Integer() }),
        '4xx': ErrorBody, '5xx': ErrorBody,
      },
    },
  }, async (req, reply) => {
    await awaitAtLeast(req, reply, d);
    const body = req.body;
    const checks = body.map((c, i) => parse(c, `[${i}]: `));
    const version = d.decider.version;
    const allow = checks.map((c, i) => {
      const r = decide(c, body[i]!.debug === true);
      return { allow: r.allow, result: r.allow, ...(body[i]!.debug ? { reason: r.reason } : {}) };
    });
    void reply.header(VERSION_HEADER, version);
    return { allow, version };
  });

  app.post('/user-permissions', {
    schema: {
      summary: 'What the user may do, per tenant and per resource instance (Permit\'s shape)',
      querystring: AtLeast, headers: WaitHeader, body: UserPermissionsRequest,
      response: { 200: Type.Record(Type.String(), Type.Unknown()), '4xx': ErrorBody, '5xx': ErrorBody },
    },
  }, async (req, reply) => {
    await awaitAtLeast(req, reply, d);
    const body = req.body;
    const resources = body.resources?.map((text, i) => {
      const r = parseResourceRef(text);
      if (!r.ok) throw new FactsyncError('invalid_request', `resources[${i}]: ${r.error}`);
      if (r.value.key === undefined) throw new FactsyncError('invalid_request', `resources[${i}]: ${JSON.stringify(text)} names a type; list instances as type:key, or use resource_types`);
      return { type: r.value.type, key: r.value.key };
    });
    const user = normalizeUser(body.user);
    d.usage.record(user.key);
    void reply.header(VERSION_HEADER, d.decider.version);
    return d.decider.userPermissions({ user, tenants: body.tenants ?? undefined, resources, resourceTypes: body.resource_types ?? undefined });
  });
}
