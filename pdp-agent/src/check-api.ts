import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import {
  AtLeastQuery,
  BulkCheckRequest, CheckAnswer, CheckRequest, FactsyncError, UserPermissionsRequest, normalizeCheck, normalizeUser, parseResourceRef,
  AT_LEAST_DESCRIPTION, parseAtLeast, parseWaitTimeout, type Check,
} from '@factsync/shared';
import type { Decider } from './decide/decider.js';
import type { AgentMetrics } from './metrics.js';
import type { UsageTracker } from './usage-tracker.js';
import type { LocalStore } from './local-store.js';
import { readAtOneVersion, type ApplyGate } from './apply-gate.js';

export interface CheckApiDeps {
  decider: Decider;
  usage: UsageTracker;
  metrics: AgentMetrics;
  log: Logger;
  decisionLog: boolean;
  defaultWaitSeconds: number;
  waitApplied(version: number, timeoutMs: number | null, signal?: AbortSignal, epoch?: string): Promise<boolean>;
  /** The epoch a bare `at_least=V` refers to. */
  serverEpoch(): string | null;
  store: Pick<LocalStore, 'version' | 'epoch'>;
  /** A bulk that yields holds it, so that it decides every check at one version. */
  gate: ApplyGate;
}

const ErrorBody = Type.Object({ error: Type.String(), message: Type.String() }, { additionalProperties: true });
const AtLeast = AtLeastQuery;
const WaitHeader = Type.Object({ 'x-wait-timeout': Type.Optional(Type.String({ description: 'seconds to wait for at_least (default DEFAULT_WAIT_SECONDS)' })) });
export const VERSION_HEADER = 'x-factsync-version';
/** What a read that may wait for `?at_least` needs of its request (every route that declares AtLeast has it). */
export interface ReadRequest { query: { at_least?: string }; headers: IncomingHttpHeaders }
export type ReadYourWrites = Pick<CheckApiDeps, 'waitApplied' | 'serverEpoch' | 'store' | 'defaultWaitSeconds'>;

/**
 * `?at_least=V.EPOCH` (or a bare V, of the epoch last heard): read your writes.
 * Resolves once this agent applied V of that epoch, or throws 504 not_synced
 * when X-Wait-Timeout passes first. A state of another epoch never answers for
 * it, however high its version (invariant 5: after a store loss, versions start
 * over, and the old 5 is not the new 5).
 */
export async function awaitAtLeast(req: ReadRequest, reply: { raw: ServerResponse }, d: ReadYourWrites): Promise<void> {
  if (req.query.at_least === undefined) return;
  const target = parseAtLeast(req.query.at_least);
  if (!target) throw new FactsyncError('invalid_request', `at_least ${JSON.stringify(req.query.at_least)} is not ${AT_LEAST_DESCRIPTION}`);
  const epoch = target.epoch ?? d.serverEpoch() ?? undefined;
  if ((epoch === undefined || epoch === d.store.epoch) && target.version <= d.store.version) return;
  const t = parseWaitTimeout(req.headers['x-wait-timeout'] as string | undefined, d.defaultWaitSeconds);
  if (!t.ok) throw new FactsyncError('invalid_request', `X-Wait-Timeout: ${t.error}`);
  const ac = new AbortController();
  reply.raw.once('close', () => !reply.raw.writableFinished && ac.abort());
  if (!(await d.waitApplied(target.version, t.value.ms, ac.signal, epoch))) {
    const { version, epoch: have } = d.store;
    const what = epoch === undefined || epoch === have ? `version ${version}, not yet ${target.version}` : `version ${version} of epoch ${have ?? 'none'}, not version ${target.version} of epoch ${epoch} (the store lost data and this agent has not resynced yet)`;
    throw new FactsyncError('not_synced', `this agent has applied ${what}`, { applied: version, epoch: have });
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
  const limited = d.metrics.checksLimited;
  const decide = (c: Check, explain: boolean) => {
    d.usage.record(c.user.key);
    const r = d.decider.check(c, explain || d.decisionLog);
    (r.allow ? allowed : denied).inc();
    if (r.limited) limited.inc();
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
    // Past a time slice the bulk yields the event loop, holding the gate: every check is decided at one version.
    return readAtOneVersion(d.gate, async (pause) => {
      const version = d.decider.version;
      const allow: { allow: boolean; result: boolean; reason?: string }[] = [];
      for (let i = 0; i < checks.length; i++) {
        await pause();
        const r = decide(checks[i]!, body[i]!.debug === true);
        allow.push({ allow: r.allow, result: r.allow, ...(body[i]!.debug ? { reason: r.reason } : {}) });
      }
      void reply.header(VERSION_HEADER, version);
      return { allow, version };
    });
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
