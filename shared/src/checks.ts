import { Type, type Static } from '@sinclair/typebox';
import { err, ok, type Result } from './result.js';
import { FactKey } from './facts.js';

/**
 * Permission checks as they arrive at the agent (docs/api.md, "Decisions on the
 * agent"), in Permit's shapes, and their one normal form. The SDK and the
 * agent share these, so a check means the same on both sides.
 */

const Attributes = Type.Record(Type.String(), Type.Unknown(), { description: 'just-in-time attributes; override stored ones for this check' });
const Key = FactKey;
// The user and resource objects accept fields they do not know and ignore them: the SDKs send more than a check
// reads (the Java SDK serializes every field of its Resource, `resourceDelimiter` included; Python may send `roles`).

export const CheckUserObject = Type.Object({
  key: Key,
  attributes: Type.Optional(Attributes),
  // Permit's SDK sends these with the user; they are accepted and read as attributes user.email etc.
  email: Type.Optional(Type.String({ maxLength: 320 })),
  first_name: Type.Optional(Type.String({ maxLength: 256 })),
  last_name: Type.Optional(Type.String({ maxLength: 256 })),
  firstName: Type.Optional(Type.String({ maxLength: 256 })),
  lastName: Type.Optional(Type.String({ maxLength: 256 })),
}, { additionalProperties: true });
export const CheckUser = Type.Union([Key, CheckUserObject], { description: 'a user key, or {key, attributes?}' });

export const CheckResourceObject = Type.Object({
  type: Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$', description: 'a resource type: lower-case, a letter then up to 63 of a-z 0-9 _ (e.g. document)' }),
  key: Type.Optional(Type.Union([Key, Type.Null()])),
  tenant: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 170 }), Type.Null()])),
  attributes: Type.Optional(Type.Union([Attributes, Type.Null()])),
  context: Type.Optional(Type.Unknown()),
}, { additionalProperties: true });
export const CheckResource = Type.Union([Type.String({ minLength: 1, maxLength: 600 }), CheckResourceObject], {
  description: '"document", "document:1", or {type, key?, tenant?, attributes?}; types are lower-case (a letter, then a-z 0-9 _)',
});

export const CheckRequest = Type.Object({
  user: CheckUser,
  action: Type.String({ minLength: 1, maxLength: 170 }),
  resource: CheckResource,
  context: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** Return why the check was decided (the role, derivation or rule). */
  debug: Type.Optional(Type.Boolean()),
  sdk: Type.Optional(Type.String({ maxLength: 64 })),
}, { additionalProperties: false });
export type CheckRequest = Static<typeof CheckRequest>;

export const MAX_BULK_CHECKS = 1000;
export const BulkCheckRequest = Type.Array(CheckRequest, { maxItems: MAX_BULK_CHECKS, description: `up to ${MAX_BULK_CHECKS} checks` });

export const UserPermissionsRequest = Type.Object({
  user: CheckUser,
  tenants: Type.Optional(Type.Union([Type.Array(Type.String({ minLength: 1, maxLength: 170 }), { maxItems: 1000 }), Type.Null()])),
  resources: Type.Optional(Type.Union([Type.Array(Type.String({ minLength: 1, maxLength: 600 }), { maxItems: 1000 }), Type.Null()])),
  resource_types: Type.Optional(Type.Union([Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 1000 }), Type.Null()])),
  context: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  sdk: Type.Optional(Type.String({ maxLength: 64 })),
}, { additionalProperties: false });
export type UserPermissionsRequest = Static<typeof UserPermissionsRequest>;

export const CheckAnswer = Type.Object({
  allow: Type.Boolean(),
  result: Type.Boolean({ description: 'the same as allow, as the Permit PDP answers' }),
  version: Type.Integer({ description: 'the version this check was decided at' }),
  reason: Type.Optional(Type.String({ description: 'with debug: true, why' })),
});
export type CheckAnswer = Static<typeof CheckAnswer>;

/** A check in normal form. */
export interface Check {
  user: { key: string; attributes: Record<string, unknown> };
  action: string;
  resource: { type: string; key: string | undefined; tenant: string | undefined; attributes: Record<string, unknown> };
}

const TYPE_RE = /^[a-z][a-z0-9_]{0,63}$/;

/** "document" or "document:1" → type and key. */
export function parseResourceRef(text: string): Result<{ type: string; key: string | undefined }> {
  const i = text.indexOf(':');
  const type = i < 0 ? text : text.slice(0, i);
  const key = i < 0 ? undefined : text.slice(i + 1);
  if (!TYPE_RE.test(type) || key === '') return err(`resource ${JSON.stringify(text)} is not "type" or "type:key", e.g. document or document:1 (types are lower-case: a letter, then a-z 0-9 _)`);
  return ok({ type, key });
}

export function normalizeUser(u: Static<typeof CheckUser>): Check['user'] {
  if (typeof u === 'string') return { key: u, attributes: {} };
  const attributes: Record<string, unknown> = {};
  const email = u.email;
  const first = u.first_name ?? u.firstName;
  const last = u.last_name ?? u.lastName;
  if (email !== undefined) attributes.email = email;
  if (first !== undefined) attributes.first_name = first;
  if (last !== undefined) attributes.last_name = last;
  return { key: u.key, attributes: { ...attributes, ...(u.attributes ?? {}) } };
}

export function normalizeCheck(c: CheckRequest): Result<Check> {
  let resource: Check['resource'];
  if (typeof c.resource === 'string') {
    const r = parseResourceRef(c.resource);
    if (!r.ok) return r;
    resource = { type: r.value.type, key: r.value.key, tenant: undefined, attributes: {} };
  } else {
    resource = { type: c.resource.type, key: c.resource.key ?? undefined, tenant: c.resource.tenant ?? undefined, attributes: c.resource.attributes ?? {} };
  }
  return ok({ user: normalizeUser(c.user), action: c.action, resource });
}
