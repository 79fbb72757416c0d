import { createHash } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { TypedApp } from '@factsync/shared/http-app';
import { Type, type TSchema } from '@sinclair/typebox';
import {
  AtLeastQuery,
  AzActionSearch, AzDecision, AzEvaluationRequest, AzEvaluationsRequest, AzEvaluationsResponse, AzResourceSearch, AzSearchResponse, AzSubjectSearch,
  FactsyncError, type Check,
} from '@factsync/shared';
import { VERSION_HEADER, awaitAtLeast, type CheckApiDeps, type ReadRequest } from './check-api.js';
import { readAtOneVersion } from './apply-gate.js';
import { MAX_PAGE, type KeyPage } from './decide/enumerate.js';

type Entity = { type: string; id?: string; properties?: Record<string, unknown> };
const TYPE_RE = /^[a-z][a-z0-9_]{0,63}$/;
const ErrorBody = Type.Object({ error: Type.String(), message: Type.String() }, { additionalProperties: true });
const AtLeast = AtLeastQuery;
const bad = (message: string) => new FactsyncError('invalid_request', message);

/**
 * An AuthZEN request as a factsync check: a subject of type `user` is the user
 * `subject.id` with `subject.properties` as just-in-time attributes; the
 * resource's `properties` are its just-in-time attributes, and its tenant is
 * `properties.tenant`, else `context.tenant`, else as for any check.
 */
export function authzenCheck(subject: Entity, action: string, resource: Entity, context: Record<string, unknown> | undefined, where = ''): Check {
  if (subject.type !== 'user') throw bad(`${where}subject.type must be "user": factsync's subjects are users (got ${JSON.stringify(subject.type)})`);
  if (!TYPE_RE.test(resource.type)) throw bad(`${where}resource.type ${JSON.stringify(resource.type)} is not a resource type: a lower-case letter, then up to 63 of a-z 0-9 _`);
  const { tenant, ...attributes } = resource.properties ?? {};
  const t = tenant ?? context?.tenant;
  if (t !== undefined && (typeof t !== 'string' || t === '')) throw bad(`${where}resource.properties.tenant must be a tenant key (a non-empty string)`);
  return {
    user: { key: subject.id ?? '', attributes: subject.properties ?? {} },
    action,
    resource: { type: resource.type, key: resource.id, tenant: t as string | undefined, attributes },
  };
}

/**
 * Page tokens carry where the page ended, its limit (the spec's second
 * request may send only the token) and a digest of the query without its
 * page, so a token reused with another query is refused.
 */
const digest = (body: Record<string, unknown>) => createHash('sha256').update(JSON.stringify({ ...body, page: undefined })).digest('base64url').slice(0, 16);
function pageOf(body: { page?: { token?: string; limit?: number } } & Record<string, unknown>): { after: string | undefined; limit: number } {
  const token = body.page?.token;
  if (token === undefined || token === '') return { after: undefined, limit: Math.min(body.page?.limit ?? 100, MAX_PAGE) };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad('page.token is not a token this PDP issued: send the next_token of the previous page unchanged');
  }
  const p = parsed as { a?: unknown; l?: unknown; h?: unknown };
  if (typeof p.a !== 'string' || typeof p.l !== 'number' || p.h !== digest(body)) {
    throw bad('page.token belongs to another query: every field but page must equal the first request\'s');
  }
  return { after: p.a, limit: Math.min(body.page?.limit ?? p.l, MAX_PAGE) };
}
const tokenFor = (body: Record<string, unknown>, limit: number, next: string | null) =>
  (next === null ? '' : Buffer.from(JSON.stringify({ a: next, l: limit, h: digest(body) }), 'utf8').toString('base64url'));

/**
 * OpenID AuthZEN Authorization API 1.0: evaluation, evaluations (the three
 * `evaluations_semantic` options), subject / resource / action search, and
 * the PDP metadata. Decided by the same evaluator as `/allowed`, at one
 * version (`X-Factsync-Version`); `X-Request-ID` is echoed on every answer.
 */
export function registerAuthzenRoutes(app: TypedApp, d: CheckApiDeps): void {
  app.addHook('onRequest', async (req, reply) => {
    const id = req.headers['x-request-id'];
    if (typeof id === 'string' && req.url.startsWith('/access/')) void reply.header('x-request-id', id);
  });
  const schema = <B extends TSchema, R extends TSchema>(summary: string, body: B, response: R) => ({
    summary, tags: ['authzen'], querystring: AtLeast, body, response: { 200: response, '4xx': ErrorBody, '5xx': ErrorBody },
  });
  const decide = (c: Check) => {
    d.usage.record(c.user.key);
    return d.decider.check(c).allow;
  };
  const at = async (req: ReadRequest, reply: FastifyReply) => {
    await awaitAtLeast(req, reply, d);
    void reply.header(VERSION_HEADER, d.decider.version);
  };

  app.post('/access/v1/evaluation', { schema: schema('AuthZEN: one access evaluation', AzEvaluationRequest, AzDecision) }, async (req, reply) => {
    await at(req, reply);
    const b = req.body;
    return { decision: decide(authzenCheck(b.subject, b.action.name, b.resource, b.context)) };
  });

  app.post('/access/v1/evaluations', { schema: schema('AuthZEN: several evaluations, with defaults and a semantic', AzEvaluationsRequest, AzEvaluationsResponse) }, async (req, reply) => {
    await at(req, reply);
    const b = req.body;
    if (!b.evaluations || b.evaluations.length === 0) {
      // Without evaluations the request is a single evaluation (the spec's backwards-compatible form).
      for (const f of ['subject', 'action', 'resource'] as const) if (!b[f]) throw bad(`body is missing required field "${f}" (or send evaluations: [...])`);
      return { decision: decide(authzenCheck(b.subject!, b.action!.name, b.resource!, b.context)) };
    }
    const semantic = b.options?.evaluations_semantic ?? 'execute_all';
    const evaluations = b.evaluations;
    // A box-car of many evaluations yields each time slice, at one version (apply-gate.ts).
    return readAtOneVersion(d.gate, async (pause) => {
      const out: { decision: boolean; context?: Record<string, unknown> }[] = [];
      for (const [i, e] of evaluations.entries()) {
        await pause();
        const subject = e.subject ?? b.subject;
        const action = e.action ?? b.action;
        const resource = e.resource ?? b.resource;
        const missing = !subject ? 'subject' : !action ? 'action' : !resource ? 'resource' : undefined;
        let decision = false;
        if (missing) {
          // An error in one evaluation is that evaluation's denial, with the reason (the spec's "Errors").
          out.push({ decision, context: { error: { status: 400, message: `evaluations[${i}] has no ${missing} and the request gives no default` } } });
        } else {
          try {
            decision = decide(authzenCheck(subject!, action!.name, resource!, { ...b.context, ...e.context }, `evaluations[${i}].`));
            out.push({ decision });
          } catch (error) {
            if (!(error instanceof FactsyncError)) throw error;
            out.push({ decision, context: { error: { status: error.status, message: error.message } } });
          }
        }
        if (semantic === 'deny_on_first_deny' && !decision) {
          out[out.length - 1]!.context ??= { code: '200', reason: 'deny_on_first_deny' };
          break;
        }
        if (semantic === 'permit_on_first_permit' && decision) break;
      }
      return { evaluations: out };
    });
  });

  const searchReply = (body: Record<string, unknown>, limit: number, page: KeyPage, result: (k: string) => Record<string, string>) =>
    ({ page: { next_token: tokenFor(body, limit, page.next), count: page.keys.length }, results: page.keys.map(result) });

  app.post('/access/v1/search/subject', { schema: schema('AuthZEN: the users who may do the action on the resource', AzSubjectSearch, AzSearchResponse) }, async (req, reply) => {
    await at(req, reply);
    const b = req.body;
    const c = authzenCheck({ ...b.subject, id: '' }, b.action.name, b.resource, b.context);
    const page = pageOf(b);
    d.decider.tenantOf(c);
    return searchReply(b, page.limit, d.decider.enumerate.subjects(c, page), (id) => ({ type: 'user', id }));
  });
  app.post('/access/v1/search/resource', { schema: schema('AuthZEN: the resources of a type the user may do the action on', AzResourceSearch, AzSearchResponse) }, async (req, reply) => {
    await at(req, reply);
    const b = req.body;
    const c = authzenCheck(b.subject, b.action.name, { ...b.resource, id: undefined }, b.context);
    d.usage.record(c.user.key);
    const page = pageOf(b);
    // Instances of every tenant are candidates, and a scoped agent holds only its tenants'.
    d.decider.requireWhole('search resources across tenants');
    return searchReply(b, page.limit, d.decider.enumerate.resources(c, page), (id) => ({ type: b.resource.type, id }));
  });
  app.post('/access/v1/search/action', { schema: schema('AuthZEN: the actions the user may do on the resource', AzActionSearch, AzSearchResponse) }, async (req, reply) => {
    await at(req, reply);
    const b = req.body;
    const c = authzenCheck(b.subject, '', b.resource, b.context);
    d.usage.record(c.user.key);
    const { after, limit } = pageOf(b);
    d.decider.tenantOf(c);
    const all = d.decider.enumerate.actions(c).filter((a) => after === undefined || a > after);
    const keys = all.slice(0, limit);
    return searchReply(b, limit, { keys, next: all.length > limit ? keys[keys.length - 1]! : null }, (name) => ({ name }));
  });

  app.get('/.well-known/authzen-configuration', { schema: { summary: 'AuthZEN PDP metadata', tags: ['authzen'] } }, async (req) => {
    const base = `${req.protocol}://${req.host}`;
    return {
      policy_decision_point: base,
      access_evaluation_endpoint: `${base}/access/v1/evaluation`,
      access_evaluations_endpoint: `${base}/access/v1/evaluations`,
      search_subject_endpoint: `${base}/access/v1/search/subject`,
      search_resource_endpoint: `${base}/access/v1/search/resource`,
      search_action_endpoint: `${base}/access/v1/search/action`,
    };
  });
}
