import { Type, type Static } from '@sinclair/typebox';
import {
  ATTRIBUTE_KINDS, FactKey, JsonObject, attributeKey, attributeValueMatchesKind, relationshipKey, relationshipProblem, roleAssignmentKey,
  type AttributeKind, type AttributeValue, type Op, type RelationshipValue, type RoleAssignmentValue,
} from './facts.js';
import { err, ok, type Result } from './result.js';

/**
 * The typed write forms of the agent API and the SDK (docs/api.md, "pdp-agent
 * local API"), and how each becomes ops. Defined once here so the agent and the
 * SDK can never disagree on what a user or a tuple means.
 */

export const DEFAULT_TENANT = 'default';
const Name = Type.String({ minLength: 1, maxLength: 170 });

export const RoleRef = Type.Object({ role: Name, tenant: Type.Optional(Name) }, { additionalProperties: false });
export const UserFields = Type.Object({
  email: Type.Optional(Type.String({ maxLength: 320 })),
  first_name: Type.Optional(Type.String({ maxLength: 256 })),
  last_name: Type.Optional(Type.String({ maxLength: 256 })),
  attributes: Type.Optional(JsonObject),
  roles: Type.Optional(Type.Array(RoleRef, { maxItems: 1000, description: 'role assignments written in the same version' })),
}, { additionalProperties: false });
export const TenantFields = Type.Object({ name: Type.Optional(Type.String({ maxLength: 256 })), attributes: Type.Optional(JsonObject) }, { additionalProperties: false });
export const RoleAssignmentInput = Type.Object({ user: Name, role: Name, tenant: Type.Optional(Name) }, { additionalProperties: false });
export const TupleInput = Type.Object({ tuple: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false });
export const RelationshipInput = Type.Union([
  Type.Object({ object: Name, relation: Name, subject: Name }, { additionalProperties: false }),
  TupleInput,
], { description: '{object, relation, subject} or {tuple: "document:1#editor@user:1"}' });
export const AttributeInput = Type.Union([
  Type.Object({ entity: Name, attribute: Name, kind: Type.String(), value: Type.Unknown() }, { additionalProperties: false }),
  TupleInput,
], { description: '{entity, attribute, kind, value} or {tuple: "document:1$is_private|boolean:true"}' });
export const AttributeRef = Type.Union([
  Type.Object({ entity: Name, attribute: Name, kind: Type.Optional(Type.String()), value: Type.Optional(Type.Unknown()) }, { additionalProperties: false }),
  TupleInput,
], { description: '{entity, attribute} or {tuple: "document:1$is_private"}' });
export const MAX_BULK_USERS = 10_000;
export const BulkUsersInput = Type.Object({
  users: Type.Array(
    Type.Composite([Type.Object({ key: FactKey }), UserFields], { additionalProperties: false }),
    { minItems: 1, maxItems: MAX_BULK_USERS },
  ),
}, { additionalProperties: false });

export type UserFields = Static<typeof UserFields>;
export type TenantFields = Static<typeof TenantFields>;
export type RoleAssignmentInput = Static<typeof RoleAssignmentInput>;
export type RelationshipInput = Static<typeof RelationshipInput>;
export type AttributeInput = Static<typeof AttributeInput>;
export type AttributeRef = Static<typeof AttributeRef>;
export type BulkUsersInput = Static<typeof BulkUsersInput>;

const pick = <T extends object>(o: T, keys: readonly (keyof T)[]) =>
  Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Record<string, unknown>;

export function roleAssignment(input: RoleAssignmentInput): RoleAssignmentValue {
  return { user: input.user, role: input.role, tenant: input.tenant ?? DEFAULT_TENANT };
}

export function roleAssignmentOp(input: RoleAssignmentInput, op: 'upsert' | 'delete' = 'upsert'): Op {
  const value = roleAssignment(input);
  const key = roleAssignmentKey(value);
  return op === 'upsert' ? { op, type: 'role_assignment', key, value } : { op, type: 'role_assignment', key };
}

/** A user upsert plus one role assignment per listed role, all in one version. */
export function userOps(key: string, fields: UserFields): Op[] {
  const ops: Op[] = [{ op: 'upsert', type: 'user', key, value: pick(fields, ['email', 'first_name', 'last_name', 'attributes']) }];
  for (const r of fields.roles ?? []) ops.push(roleAssignmentOp({ user: key, role: r.role, tenant: r.tenant }));
  return ops;
}

export const tenantOp = (key: string, fields: TenantFields): Op =>
  ({ op: 'upsert', type: 'tenant', key, value: pick(fields, ['name', 'attributes']) });

// ---- relationship tuples: `object#relation@subject` (Permify style) --------

/**
 * `document:1#editor@user:1`. The object holds neither '#' nor '@'; the relation
 * no '@'; the subject is the rest, so a subject set such as `group:eng#member`
 * is accepted.
 */
export function parseRelationshipTuple(tuple: string): Result<RelationshipValue> {
  const m = /^([^#@\s]+)#([^#@\s]+)@(\S+)$/.exec(tuple.trim());
  if (!m) {
    return err(`relationship tuple ${JSON.stringify(tuple)} is not valid: write object#relation@subject, e.g. document:1#editor@user:1`);
  }
  const v = { object: m[1]!, relation: m[2]!, subject: m[3]! };
  const problem = relationshipProblem(v);
  return problem ? err(`relationship tuple ${JSON.stringify(tuple)}: ${problem}`) : ok(v);
}

export function relationshipOf(input: RelationshipInput): Result<RelationshipValue> {
  if ('tuple' in input) return parseRelationshipTuple(input.tuple);
  const v = { object: input.object, relation: input.relation, subject: input.subject };
  const problem = relationshipProblem(v);
  return problem ? err(problem) : ok(v);
}

export function relationshipOp(input: RelationshipInput, op: 'upsert' | 'delete' = 'upsert'): Result<Op> {
  const v = relationshipOf(input);
  if (!v.ok) return v;
  const key = relationshipKey(v.value);
  return ok(op === 'upsert' ? { op, type: 'relationship', key, value: v.value } : { op, type: 'relationship', key });
}

// ---- attributes: `entity$attribute|kind:value` -----------------------------

const KIND_ALIASES = new Map<string, AttributeKind>([
  ...ATTRIBUTE_KINDS.map((k) => [k, k]),
  ...ATTRIBUTE_KINDS.filter((k) => k.endsWith('_array')).map((k) => [`${k.slice(0, -6)}[]`, k]),
  ['bool', 'boolean'], ['int', 'integer'], ['float', 'double'],
] as [string, AttributeKind][]);
const KINDS_TEXT = `${ATTRIBUTE_KINDS.join(', ')} (or string[], boolean[], integer[], double[])`;

export function normalizeKind(kind: string): Result<AttributeKind> {
  const k = KIND_ALIASES.get(kind.trim());
  return k ? ok(k) : err(`attribute kind ${JSON.stringify(kind)} is unknown; use one of ${KINDS_TEXT}`);
}

function scalarFromText(base: string, text: string): Result<unknown> {
  switch (base) {
    case 'string': return ok(text);
    case 'boolean':
      if (text === 'true' || text === 'false') return ok(text === 'true');
      return err(`${JSON.stringify(text)} is not a boolean: use true or false`);
    case 'integer':
      if (/^-?\d+$/.test(text) && Number.isSafeInteger(Number(text))) return ok(Number(text));
      return err(`${JSON.stringify(text)} is not an integer`);
    default: {
      const n = Number(text);
      if (text.trim() !== '' && Number.isFinite(n)) return ok(n);
      return err(`${JSON.stringify(text)} is not a number`);
    }
  }
}

/** The value part of an attribute tuple; arrays are a JSON array or a comma list. */
export function attributeValueFromText(kind: AttributeKind, text: string): Result<unknown> {
  if (!kind.endsWith('_array')) return scalarFromText(kind, text);
  const base = kind.slice(0, -6);
  const t = text.trim();
  if (t.startsWith('[')) {
    try {
      return ok(JSON.parse(t) as unknown);
    } catch {
      return err(`${JSON.stringify(text)} is not a JSON array`);
    }
  }
  if (t === '') return ok([]);
  const out: unknown[] = [];
  for (const part of t.split(',')) {
    const v = scalarFromText(base, base === 'string' ? part : part.trim());
    if (!v.ok) return v;
    out.push(v.value);
  }
  return ok(out);
}

/** `document:1$is_private|boolean:true`; with `requireValue: false` also `document:1$is_private`. */
export function parseAttributeTuple(tuple: string, requireValue = true): Result<AttributeValue | Pick<AttributeValue, 'entity' | 'attribute'>> {
  const usage = 'write entity$attribute|kind:value, e.g. document:1$is_private|boolean:true';
  const m = /^([^$|\s]+)\$([^$|:\s]+)(?:\|([a-z_[\]]+):(.*))?$/s.exec(tuple.trim());
  if (!m) return err(`attribute tuple ${JSON.stringify(tuple)} is not valid: ${usage}`);
  const [, entity, attribute, kindText, valueText] = m as unknown as [string, string, string, string | undefined, string | undefined];
  if (kindText === undefined) {
    return requireValue ? err(`attribute tuple ${JSON.stringify(tuple)} has no |kind:value part: ${usage}`) : ok({ entity, attribute });
  }
  const kind = normalizeKind(kindText);
  if (!kind.ok) return kind;
  const value = attributeValueFromText(kind.value, valueText ?? '');
  if (!value.ok) return err(`attribute tuple ${JSON.stringify(tuple)}: ${value.error} (kind ${kind.value})`);
  return ok({ entity, attribute, kind: kind.value, value: value.value });
}

export function attributeOf(input: AttributeInput): Result<AttributeValue> {
  if ('tuple' in input) return parseAttributeTuple(input.tuple, true) as Result<AttributeValue>;
  const kind = normalizeKind(input.kind);
  if (!kind.ok) return kind;
  // An array kind takes a JSON array, or the same comma list as the tuple form ("a,b,c").
  if (kind.value.endsWith('_array') && typeof input.value === 'string') {
    const parsed = attributeValueFromText(kind.value, input.value);
    if (!parsed.ok) return err(`attribute ${input.entity}$${input.attribute}: ${parsed.error}`);
    return attributeOf({ ...input, kind: kind.value, value: parsed.value });
  }
  if (!attributeValueMatchesKind(kind.value, input.value)) {
    return err(`attribute ${input.entity}$${input.attribute}: value ${JSON.stringify(input.value)} is not of kind ${kind.value}`);
  }
  return ok({ entity: input.entity, attribute: input.attribute, kind: kind.value, value: input.value });
}

export function attributeOp(input: AttributeInput): Result<Op> {
  const v = attributeOf(input);
  if (!v.ok) return v;
  return ok({ op: 'upsert', type: 'attribute', key: attributeKey(v.value), value: v.value });
}

export function attributeDeleteOp(input: AttributeRef): Result<Op> {
  const ref = 'tuple' in input ? parseAttributeTuple(input.tuple, false) : ok({ entity: input.entity, attribute: input.attribute });
  if (!ref.ok) return ref;
  return ok({ op: 'delete', type: 'attribute', key: attributeKey(ref.value) });
}

/** `GET /v1/status` of the agent (docs/api.md: agent_id, env, applied, head, connected, and more). */
export const AgentStatus = Type.Object({
  agent_id: Type.String(),
  env: Type.String(),
  applied: Type.Integer(),
  head: Type.Integer(),
  connected: Type.Boolean(),
  connection: Type.String({ description: 'idle, connecting, open, retrying or closed' }),
  ready: Type.Boolean(),
  stale: Type.Boolean({ description: 'not caught up with a live server: answers come from the last state applied (offline operation)' }),
  epoch: Type.Union([Type.String(), Type.Null()]),
  server: Type.String(),
  facts: Type.Integer(),
  reconnects: Type.Integer(),
  changes_applied: Type.Integer({ description: 'versions applied one by one since start' }),
  snapshots_applied: Type.Integer({ description: 'snapshots loaded since start' }),
  digest: Type.Optional(Type.String({ description: 'sha256 of the local facts, with ?digest=true' })),
  tenants: Type.Optional(Type.Array(Type.String(), { description: 'a scoped agent (AGENT_TENANTS): the tenants whose share it holds' })),
});
export type AgentStatus = Static<typeof AgentStatus>;
