import { Type, type Static } from '@sinclair/typebox';
import { FactKey } from './facts.js';

/**
 * OpenID AuthZEN Authorization API 1.0 requests, as the spec's information
 * model defines them (subject, action, resource, context; the evaluations
 * box-car; the three searches with their page object). Unknown fields are
 * ignored, as the spec requires of receivers.
 */

const open = { additionalProperties: true };
const Id = FactKey;
const Properties = Type.Record(Type.String(), Type.Unknown());

export const AzSubject = Type.Object({ type: Type.String({ minLength: 1, maxLength: 64 }), id: Id, properties: Type.Optional(Properties) }, open);
export const AzResource = Type.Object({ type: Type.String({ minLength: 1, maxLength: 64 }), id: Id, properties: Type.Optional(Properties) }, open);
export const AzAction = Type.Object({ name: Type.String({ minLength: 1, maxLength: 170 }), properties: Type.Optional(Properties) }, open);
/** In a search the searched entity names only its type. */
const AzTypeOnly = Type.Object({ type: Type.String({ minLength: 1, maxLength: 64 }), id: Type.Optional(Type.String()), properties: Type.Optional(Properties) }, open);
const Context = Type.Record(Type.String(), Type.Unknown());

export const AzEvaluationRequest = Type.Object({ subject: AzSubject, action: AzAction, resource: AzResource, context: Type.Optional(Context) }, open);
export type AzEvaluationRequest = Static<typeof AzEvaluationRequest>;

export const EVALUATIONS_SEMANTICS = ['execute_all', 'deny_on_first_deny', 'permit_on_first_permit'] as const;
export const MAX_EVALUATIONS = 1000;
const AzEvaluationItem = Type.Object({
  subject: Type.Optional(AzSubject), action: Type.Optional(AzAction), resource: Type.Optional(AzResource), context: Type.Optional(Context),
}, open);
export const AzEvaluationsRequest = Type.Object({
  subject: Type.Optional(AzSubject), action: Type.Optional(AzAction), resource: Type.Optional(AzResource), context: Type.Optional(Context),
  evaluations: Type.Optional(Type.Array(AzEvaluationItem, { maxItems: MAX_EVALUATIONS, description: `up to ${MAX_EVALUATIONS} evaluations` })),
  options: Type.Optional(Type.Object({
    evaluations_semantic: Type.Optional(Type.Union([Type.Literal('execute_all'), Type.Literal('deny_on_first_deny'), Type.Literal('permit_on_first_permit')], { description: EVALUATIONS_SEMANTICS.join(', ') })),
  }, open)),
}, open);
export type AzEvaluationsRequest = Static<typeof AzEvaluationsRequest>;

export const AzPage = Type.Object({
  token: Type.Optional(Type.String({ maxLength: 2048 })),
  limit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'results per page, at most 1000 (default 100)' })),
}, open);
export const AzSubjectSearch = Type.Object({ subject: AzTypeOnly, action: AzAction, resource: AzResource, context: Type.Optional(Context), page: Type.Optional(AzPage) }, open);
export const AzResourceSearch = Type.Object({ subject: AzSubject, action: AzAction, resource: AzTypeOnly, context: Type.Optional(Context), page: Type.Optional(AzPage) }, open);
export const AzActionSearch = Type.Object({ subject: AzSubject, resource: AzResource, context: Type.Optional(Context), page: Type.Optional(AzPage) }, open);
export type AzSubjectSearch = Static<typeof AzSubjectSearch>;
export type AzResourceSearch = Static<typeof AzResourceSearch>;
export type AzActionSearch = Static<typeof AzActionSearch>;

export const AzDecision = Type.Object({ decision: Type.Boolean(), context: Type.Optional(Type.Record(Type.String(), Type.Unknown())) });
/** `evaluations` when the request had some; `decision` alone when it had none (one evaluation). One shape, no union: replies serialize fast. */
export const AzEvaluationsResponse = Type.Object({ decision: Type.Optional(Type.Boolean()), evaluations: Type.Optional(Type.Array(AzDecision)) });
export const AzSearchResponse = Type.Object({
  page: Type.Object({ next_token: Type.String(), count: Type.Integer() }),
  results: Type.Array(Type.Record(Type.String(), Type.String())),
});
