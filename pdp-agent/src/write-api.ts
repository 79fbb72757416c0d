import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import type { TypedApp } from '@factsync/shared/http-app';
import {
  AttributeInput, AttributeRef, BulkUsersInput, FactKey, FactsyncError, RelationshipInput, RoleAssignmentInput, SyncStatus,
  TenantFields, UserFields, WriteRequest, attributeDeleteOp, attributeOp, parseOps, parseWriteHeaders,
  relationshipOp, roleAssignmentOp, tenantOp, typeWarnings, userOps, Warnings, type Op, type Result,
} from '@factsync/shared';
import type { Forwarder, WriteOptions, WriteResult } from './forwarder.js';
import type { LocalStore } from './local-store.js';
import type { Decider } from './decide/decider.js';
import type { AgentMetrics } from './metrics.js';

export interface WriteApiDeps {
  forwarder: Forwarder;
  store: LocalStore;
  /** Scoped agents refuse the writes they cannot complete from what they hold. */
  decider?: Pick<Decider, 'requireWhole'>;
  defaultWaitSeconds: number;
  metrics: AgentMetrics;
}

const ErrorBody = Type.Object({ error: Type.String(), message: Type.String() }, { additionalProperties: true });
const WriteResultSchema = Type.Object({
  version: Type.Integer({ minimum: 1 }),
  epoch: Type.String({ description: 'the epoch of version: `version.epoch` is the consistency token for at_least' }),
  synced: Type.Boolean(),
  applied: Type.Integer({ minimum: 0 }),
  sync: Type.Optional(SyncStatus),
  warnings: Type.Optional(Warnings),
});
const WAIT_HEADERS = Type.Object({
  'x-wait-for': Type.Optional(Type.String({ description: '"local" (default), "all", an integer n, or a comma list of agent ids' })),
  'x-wait-timeout': Type.Optional(Type.String({ description: 'seconds: 0 = answer now, >0 = wait up to, <0 = until synced' })),
  'x-timeout-policy': Type.Optional(Type.String({ description: '"ignore" (default: 200 with synced:false) or "fail" (424)' })),
  'idempotency-key': Type.Optional(Type.String()),
});
const schema = <E extends { params?: TSchema; body?: TSchema }>(summary: string, extra: E) => ({
  summary, headers: WAIT_HEADERS, response: { 200: WriteResultSchema, '4xx': ErrorBody, '5xx': ErrorBody }, ...extra,
});

/**
 * Deleting a user: the user and the role assignments of it this agent knows of, in one version.
 * A scoped agent knows only its tenants' assignments, so it refuses (421) rather than leave the others behind.
 */
export function userDeleteOps(store: LocalStore, key: string, decider?: Pick<Decider, 'requireWhole'>): Op[] {
  decider?.requireWhole(`delete user "${key}": that also deletes its role assignments in every tenant, and this agent holds only its own tenants'; delete it through an agent without AGENT_TENANTS`);
  return [
    { op: 'delete', type: 'user', key },
    ...store.keysWithPrefix('role_assignment', `${key}/`).map((k): Op => ({ op: 'delete', type: 'role_assignment', key: k })),
  ];
}

/** What forwarding needs of a request: its waiting headers and a log; of the reply, to notice the client leaving. */
export interface WriteExchange { headers: IncomingHttpHeaders; log: FastifyBaseLogger }
/** Forwards ops as one version, waiting per the request's headers; what every write route of the agent calls. */
export type ForwardOps = (req: WriteExchange, reply: { raw: ServerResponse }, ops: Result<Op[]>) => Promise<WriteResult>;

export function createForward(d: WriteApiDeps): ForwardOps {
  function waitOptions(req: WriteExchange, reply: { raw: ServerResponse }): WriteOptions {
    const parsed = parseWriteHeaders(req.headers, { waitFor: { kind: 'local' }, waitSeconds: d.defaultWaitSeconds });
    if (!parsed.ok) throw new FactsyncError('invalid_request', parsed.error);
    const { waitFor, timeoutMs, policy, idempotencyKey, source } = parsed.value;
    if (source) throw new FactsyncError('invalid_request', 'X-Source is for the server: a source writes to the server (FACTSYNC_URL) directly, not through an agent');
    const ac = new AbortController();
    reply.raw.once('close', () => !reply.raw.writableFinished && ac.abort());
    return { waitFor, timeoutMs, policy, idempotencyKey, signal: ac.signal };
  }

  const forward: ForwardOps = async (req, reply, ops) => {
    if (!ops.ok) throw new FactsyncError('invalid_request', ops.error);
    // The same checks the server makes, before a round trip: well-known values and derived keys.
    const checked = parseOps(ops.value);
    if (!checked.ok) throw new FactsyncError('invalid_request', checked.error);
    const o = waitOptions(req, reply);
    const end = d.metrics.writeDuration.startTimer({ wait_for: o.waitFor.kind });
    try {
      const r = await d.forwarder.write(checked.value, o);
      d.metrics.forwardedWrites.inc({ outcome: r.synced ? 'synced' : 'not_synced' });
      req.log.debug({ version: r.version, synced: r.synced, ops: checked.value.length }, 'write forwarded');
      // Said here too: most writes travel in producer batches, whose answers carry no warnings.
      const warnings = [...new Set([...typeWarnings(checked.value), ...(r.warnings ?? [])])];
      return warnings.length > 0 ? { ...r, warnings } : r;
    } catch (e) {
      d.metrics.forwardedWrites.inc({ outcome: e instanceof FactsyncError ? e.code : 'internal' });
      throw e;
    } finally {
      end();
    }
  };
  return forward;
}

/**
 * Writes through the agent (docs/api.md, "pdp-agent local API"): the generic
 * `POST /v1/facts` and typed endpoints that build the ops, all forwarded to the
 * server as one version and answered per the waiting headers.
 */
export function registerWriteRoutes(app: TypedApp, d: WriteApiDeps, forward: ForwardOps = createForward(d)): void {
  const okOps = (ops: Op[]): Result<Op[]> => ({ ok: true, value: ops });
  const one = (op: Result<Op>): Result<Op[]> => (op.ok ? okOps([op.value]) : op);
  const KeyParams = Type.Object({ key: FactKey });

  app.post('/v1/facts', { schema: schema('Write ops as one version', { body: WriteRequest }) }, (req, reply) =>
    forward(req, reply, parseOps(req.body.ops)));

  app.put('/v1/facts/users/:key', { schema: schema('Create or update a user (and assign roles)', { params: KeyParams, body: UserFields }) }, (req, reply) =>
    forward(req, reply, okOps(userOps(req.params.key, req.body))));

  app.delete('/v1/facts/users/:key', { schema: schema('Delete a user and the role assignments this agent knows of', { params: KeyParams }) }, (req, reply) => {
    return forward(req, reply, okOps(userDeleteOps(d.store, req.params.key, d.decider)));
  });

  app.put('/v1/facts/tenants/:key', { schema: schema('Create or update a tenant', { params: KeyParams, body: TenantFields }) }, (req, reply) =>
    forward(req, reply, okOps([tenantOp(req.params.key, req.body)])));
  app.delete('/v1/facts/tenants/:key', { schema: schema('Delete a tenant', { params: KeyParams }) }, (req, reply) =>
    forward(req, reply, okOps([{ op: 'delete', type: 'tenant', key: req.params.key }])));

  app.post('/v1/facts/role_assignments', { schema: schema('Assign a role', { body: RoleAssignmentInput }) }, (req, reply) =>
    forward(req, reply, okOps([roleAssignmentOp(req.body)])));
  app.delete('/v1/facts/role_assignments', { schema: schema('Unassign a role', { body: RoleAssignmentInput }) }, (req, reply) =>
    forward(req, reply, okOps([roleAssignmentOp(req.body, 'delete')])));

  app.post('/v1/facts/relationships', { schema: schema('Write a relationship tuple', { body: RelationshipInput }) }, (req, reply) =>
    forward(req, reply, one(relationshipOp(req.body))));
  app.delete('/v1/facts/relationships', { schema: schema('Delete a relationship tuple', { body: RelationshipInput }) }, (req, reply) =>
    forward(req, reply, one(relationshipOp(req.body, 'delete'))));

  app.post('/v1/facts/attributes', { schema: schema('Write a typed attribute', { body: AttributeInput }) }, (req, reply) =>
    forward(req, reply, one(attributeOp(req.body))));
  app.delete('/v1/facts/attributes', { schema: schema('Delete an attribute', { body: AttributeRef }) }, (req, reply) =>
    forward(req, reply, one(attributeDeleteOp(req.body))));

  app.post('/v1/facts/bulk/users', { schema: schema('Create or update up to 10,000 users in one version', { body: BulkUsersInput }) }, (req, reply) =>
    forward(req, reply, okOps(req.body.users.flatMap(({ key, ...fields }) => userOps(key, fields)))));
}
