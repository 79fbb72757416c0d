import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { FormatRegistry } from '@sinclair/typebox';
import { err, ok, type Result } from './result.js';
import {
  ConditionSetRuleValue, ConditionSetValue, ResourceInstanceValue, ResourceRoleValue, ResourceValue, TenantRoleValue,
  conditionSetProblem, conditionSetRuleKey, conditionSetRuleProblem, resourceInstanceProblem, resourceProblem, resourceRoleProblem, tenantRoleProblem,
} from './policy.js';

/** Names and limits of the data model (docs/api.md, "Data model"). */
export const ENV_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const TYPE_PATTERN = '^[a-z][a-z0-9_]{0,63}$';
/**
 * A key is 1-512 bytes of UTF-8 with no lone surrogate: Redis, SQLite and the
 * frames count bytes, and a lone surrogate would come back from either store as
 * U+FFFD, another key. The same test runs in the server's Ajv and in every
 * TypeBox check (agents, subscribers, the SDK), so a key one side accepts the
 * other cannot refuse.
 */
export const MAX_KEY_BYTES = 512;
export const FACT_KEY_FORMAT = 'fact_key';
/** With the u flag a paired surrogate is one code point, so this matches only a lone one. */
const LONE_SURROGATE = /\p{Cs}/u;
export const isWellFormed = (s: string): boolean => !LONE_SURROGATE.test(s);
export function isFactKey(s: string): boolean {
  // A UTF-16 unit is at most 3 bytes and at least 1: short keys need no count.
  if (s.length === 0 || s.length > MAX_KEY_BYTES) return false;
  if (!isWellFormed(s)) return false;
  return s.length * 3 <= MAX_KEY_BYTES || Buffer.byteLength(s, 'utf8') <= MAX_KEY_BYTES;
}
/** Why `s` is not a key, in words (undefined when it is one). */
export function factKeyProblem(s: string): string | undefined {
  if (s.length === 0) return 'is empty: a key needs at least one character';
  if (!isWellFormed(s)) return 'holds a lone UTF-16 surrogate (\\ud800-\\udfff without its pair): keys are UTF-8 text';
  const bytes = Buffer.byteLength(s, 'utf8');
  if (bytes > MAX_KEY_BYTES) return `is ${bytes} bytes of UTF-8; a key is at most ${MAX_KEY_BYTES} bytes (a character outside ASCII takes 2-4)`;
  return undefined;
}
FormatRegistry.Set(FACT_KEY_FORMAT, isFactKey);
/** Values nest at most this deep: deeper JSON parses, but would overflow the stack of every JSON.stringify after it. */
export const MAX_VALUE_DEPTH = 32;

/**
 * What would not survive the trip through the log unchanged: nesting deeper
 * than `maxDepth` (every JSON.stringify after it would overflow the stack) or
 * a number JSON cannot carry (`1e400` parses as Infinity and would be stored
 * as null). Iterative, so it cannot overflow itself.
 */
export function valueProblem(v: unknown, maxDepth: number): 'too_deep' | 'not_finite' | undefined {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (typeof x === 'number' && !Number.isFinite(x)) return 'not_finite';
    if (x === null || typeof x !== 'object') continue;
    if (d > maxDepth) return 'too_deep';
    for (const child of Array.isArray(x) ? x : Object.values(x)) {
      if (child !== null && typeof child === 'object') stack.push([child, d + 1]);
      else if (typeof child === 'number' && !Number.isFinite(child)) return 'not_finite';
    }
  }
  return undefined;
}

export const EnvName = Type.String({ pattern: ENV_PATTERN, description: 'environment: 1-64 of A-Z a-z 0-9 _ -' });
export const FactType = Type.String({ pattern: TYPE_PATTERN, description: 'lower-case letter, then up to 63 of a-z 0-9 _' });
export const FactKey = Type.String({ format: FACT_KEY_FORMAT, description: 'a key: 1-512 bytes of UTF-8' });
export const JsonObject = Type.Record(Type.String(), Type.Unknown());

export const Fact = Type.Object(
  { type: FactType, key: FactKey, value: JsonObject },
  { additionalProperties: false },
);
export type Fact = Static<typeof Fact>;

export const UpsertOp = Type.Object(
  { op: Type.Literal('upsert'), type: FactType, key: FactKey, value: JsonObject },
  { additionalProperties: false },
);
export const DeleteOp = Type.Object(
  { op: Type.Literal('delete'), type: FactType, key: FactKey },
  { additionalProperties: false },
);
export const Op = Type.Union([UpsertOp, DeleteOp]);
export type UpsertOp = Static<typeof UpsertOp>;
export type DeleteOp = Static<typeof DeleteOp>;
export type Op = Static<typeof Op>;

export const Change = Type.Object({
  version: Type.Integer({ minimum: 1 }),
  /** Chained hash of this change and the previous one (invariant 9; see chain.ts). */
  id: Type.String({ minLength: 1, maxLength: 64 }),
  /** On a change filtered for a subscription with `types` only: the id of the version before (see subscription.ts). */
  prev: Type.Optional(Type.String({ maxLength: 64 })),
  /** On a share only: the first version this change stands for; `from`..`version` held nothing of the subscription's types. */
  from: Type.Optional(Type.Integer({ minimum: 1 })),
  ts: Type.String(),
  /**
   * Where the facts of some ops were before this change, by op index: the tenant
   * the stored fact named, or null when it named none; an op absent here found
   * no fact. Set by the store for deletes and upserts of facts whose tenant is in
   * their value (scope.ts recordsPrior), so that a share is sent a delete only
   * where the fact was: a share never names another tenant's key. Not part of
   * the chain id; a share does not carry it.
   */
  was: Type.Optional(Type.Record(Type.String({ pattern: '^[0-9]{1,6}$' }), Type.Union([Type.String(), Type.Null()]))),
  ops: Type.Array(Op),
});
export type Change = Static<typeof Change>;

// ---- well-known fact types -------------------------------------------------

const Attributes = Type.Optional(JsonObject);

export const ATTRIBUTE_KINDS = [
  'string', 'boolean', 'integer', 'double',
  'string_array', 'boolean_array', 'integer_array', 'double_array',
] as const;
export type AttributeKind = (typeof ATTRIBUTE_KINDS)[number];

export const UserValue = Type.Object(
  {
    email: Type.Optional(Type.String({ maxLength: 320 })),
    first_name: Type.Optional(Type.String({ maxLength: 256 })),
    last_name: Type.Optional(Type.String({ maxLength: 256 })),
    attributes: Attributes,
  },
  { additionalProperties: false },
);
export const TenantValue = Type.Object(
  { name: Type.Optional(Type.String({ maxLength: 256 })), attributes: Attributes },
  { additionalProperties: false },
);
/** A tenant-wide role: see policy.ts (roles are policy facts too). */
export const RoleValue = TenantRoleValue;
const Part = Type.String({ minLength: 1, maxLength: 170 });
export const RoleAssignmentValue = Type.Object(
  { user: Part, role: Part, tenant: Part },
  { additionalProperties: false },
);
export const RelationshipValue = Type.Object(
  {
    object: Part, relation: Part, subject: Part,
    /** A tuple of one tenant counts only in checks in that tenant, and scoped agents of other tenants do not hold it. */
    tenant: Type.Optional(Part),
  },
  { additionalProperties: false },
);
export const AttributeValue = Type.Object(
  {
    entity: Part,
    attribute: Part,
    kind: Type.Union(ATTRIBUTE_KINDS.map((k) => Type.Literal(k))),
    value: Type.Unknown(),
  },
  { additionalProperties: false },
);

export type UserValue = Static<typeof UserValue>;
export type TenantValue = Static<typeof TenantValue>;
export type RoleValue = Static<typeof RoleValue>;
export type RoleAssignmentValue = Static<typeof RoleAssignmentValue>;
export type RelationshipValue = Static<typeof RelationshipValue>;
export type AttributeValue = Static<typeof AttributeValue>;

/** Keys that are derived from the value, so a fact can never disagree with its own address. */
export const roleAssignmentKey = (v: RoleAssignmentValue): string => `${v.user}/${v.role}/${v.tenant}`;
export const relationshipKey = (v: RelationshipValue): string => `${v.object}#${v.relation}@${v.subject}`;
export const attributeKey = (v: Pick<AttributeValue, 'entity' | 'attribute'>): string => `${v.entity}$${v.attribute}`;

export function attributeValueMatchesKind(kind: AttributeKind, value: unknown): boolean {
  const scalar = (k: string, x: unknown): boolean => {
    switch (k) {
      case 'string': return typeof x === 'string';
      case 'boolean': return typeof x === 'boolean';
      case 'integer': return typeof x === 'number' && Number.isSafeInteger(x);
      case 'double': return typeof x === 'number' && Number.isFinite(x);
      default: return false;
    }
  };
  if (kind.endsWith('_array')) {
    const base = kind.slice(0, -'_array'.length);
    return Array.isArray(value) && value.every((x) => scalar(base, x));
  }
  return scalar(kind, value);
}

/**
 * Zanzibar/Permify entities: `type:id`; a subject may be a subject set `type:id#relation`. A subject's id
 * may contain @ (user keys are often e-mail addresses): a key `object#relation@subject` splits at its
 * first @, which an object and a relation never contain.
 */
const ENTITY_RE = /^[a-z][a-z0-9_]{0,63}:[^#@\s]+$/;
const SUBJECT_RE = /^[a-z][a-z0-9_]{0,63}:[^#\s]+(#[^#@\s]+)?$/;
const RELATION_RE = /^[^#@\s]+$/;

export function relationshipProblem(v: RelationshipValue): string | undefined {
  if (!ENTITY_RE.test(v.object)) return `object ${JSON.stringify(v.object)} is not type:id (a lower-case type, a colon, an id), e.g. document:1`;
  if (!RELATION_RE.test(v.relation)) return `relation ${JSON.stringify(v.relation)} must not contain #, @ or spaces`;
  if (!SUBJECT_RE.test(v.subject)) return `subject ${JSON.stringify(v.subject)} is not type:id or a subject set type:id#relation, e.g. user:1 or group:eng#member`;
  return undefined;
}

interface WellKnown {
  check: TypeCheck<TSchema>;
  /** The key this value must be stored under, for types whose key is derived. */
  keyOf?: (value: never) => string;
  extra?: (value: never, key: string) => string | undefined;
}

/** A Map: fact types are user input, and `constructor` must not find Object's. */
const wellKnown = new Map<string, WellKnown>(Object.entries({
  user: { check: TypeCompiler.Compile(UserValue) },
  tenant: { check: TypeCompiler.Compile(TenantValue) },
  role: { check: TypeCompiler.Compile(TenantRoleValue), extra: (v: TenantRoleValue, key) => tenantRoleProblem(key, v) },
  resource: { check: TypeCompiler.Compile(ResourceValue), extra: (v: ResourceValue, key) => resourceProblem(key, v) },
  resource_role: { check: TypeCompiler.Compile(ResourceRoleValue), extra: (v: ResourceRoleValue, key) => resourceRoleProblem(key, v) },
  resource_instance: { check: TypeCompiler.Compile(ResourceInstanceValue), extra: (_v: never, key) => resourceInstanceProblem(key) },
  condition_set: { check: TypeCompiler.Compile(ConditionSetValue), extra: (v: ConditionSetValue, key) => conditionSetProblem(key, v) },
  condition_set_rule: { check: TypeCompiler.Compile(ConditionSetRuleValue), keyOf: conditionSetRuleKey, extra: conditionSetRuleProblem },
  role_assignment: { check: TypeCompiler.Compile(RoleAssignmentValue), keyOf: roleAssignmentKey },
  relationship: { check: TypeCompiler.Compile(RelationshipValue), keyOf: relationshipKey, extra: relationshipProblem },
  attribute: {
    check: TypeCompiler.Compile(AttributeValue),
    keyOf: attributeKey,
    extra: (v: AttributeValue) =>
      attributeValueMatchesKind(v.kind, v.value) ? undefined : `value ${JSON.stringify(v.value)} is not of kind ${v.kind}`,
  },
} satisfies Record<string, WellKnown>));

export const WELL_KNOWN_TYPES = [...wellKnown.keys()];

/**
 * The key a fact of `type` must have for `value`, for types whose key is
 * derived from their value (role_assignment, relationship, attribute,
 * condition_set_rule); undefined for the others, or when the value is not of
 * the type's shape (validation then says why).
 */
export function derivedKey(type: string, value: unknown): string | undefined {
  const known = wellKnown.get(type);
  if (!known?.keyOf || !known.check.Check(value)) return undefined;
  return known.keyOf(value as never);
}
export const hasDerivedKey = (type: string): boolean => wellKnown.get(type)?.keyOf !== undefined;

/**
 * Checks what the JSON schema of the route cannot: the value of a well-known type
 * against its schema, and derived keys. Returns a sentence naming the op and field.
 */
export function validateOps(ops: readonly Op[]): Result<true> {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.op !== 'upsert') continue;
    const known = wellKnown.get(op.type);
    if (!known) continue;
    if (!known.check.Check(op.value)) {
      const first = known.check.Errors(op.value).First();
      const where = first?.path ? `value${first.path.replaceAll('/', '.')}` : 'value';
      const msg = first?.message ? first.message.charAt(0).toLowerCase() + first.message.slice(1) : 'is invalid';
      return err(`ops[${i}] (${op.type} "${op.key}"): ${where}: ${msg}`);
    }
    const problem = known.extra?.(op.value as never, op.key);
    if (problem) return err(`ops[${i}] (${op.type} "${op.key}"): ${problem}`);
    if (known.keyOf) {
      const expected = known.keyOf(op.value as never);
      if (expected !== op.key) {
        return err(`ops[${i}]: a ${op.type} with this value must have key "${expected}", got "${op.key}"`);
      }
    }
  }
  return ok(true);
}

/** The address of a fact in flat maps: type names cannot contain ':'. */
export const factField = (type: string, key: string): string => `${type}:${key}`;
export function splitFactField(field: string): { type: string; key: string } {
  const i = field.indexOf(':');
  return { type: field.slice(0, i), key: field.slice(i + 1) };
}

// ---- the write request as it arrives on the wire ---------------------------

/**
 * The route schema of a write. It is deliberately flatter than `Op` (one object
 * shape with an `op` enum instead of a union) so that a validation failure names
 * the one field that is wrong instead of every branch of a union.
 */
export const WireOp = Type.Object(
  {
    op: Type.Union([Type.Literal('upsert'), Type.Literal('delete')], { description: '"upsert" or "delete"' }),
    type: FactType,
    key: FactKey,
    value: Type.Optional(JsonObject),
  },
  { additionalProperties: false },
);
export const WriteRequest = Type.Object(
  { ops: Type.Array(WireOp, { minItems: 1, description: 'the operations of one version, applied in order' }) },
  { additionalProperties: false },
);
export type WireOp = Static<typeof WireOp>;
export type WriteRequest = Static<typeof WriteRequest>;

const opCheck = TypeCompiler.Compile(Op);
function firstOpProblem(op: Op): string {
  const e = opCheck.Errors(op).First();
  return e ? `${e.path || 'op'}: ${e.message}` : 'does not match the protocol';
}

/** Wire ops → Ops: an upsert needs a value, a delete must not carry one; then `validateOps`. */
export function parseOps(wire: readonly WireOp[]): Result<Op[]> {
  const ops: Op[] = [];
  for (let i = 0; i < wire.length; i++) {
    const w = wire[i]!;
    if (w.op === 'upsert') {
      if (w.value === undefined) return err(`ops[${i}] (upsert ${w.type} "${w.key}") has no value: an upsert needs "value": {...}`);
      const problem = valueProblem(w.value, MAX_VALUE_DEPTH);
      if (problem === 'too_deep') return err(`ops[${i}] (upsert ${w.type} "${w.key}"): value nests deeper than ${MAX_VALUE_DEPTH} levels; flatten it`);
      if (problem === 'not_finite') return err(`ops[${i}] (upsert ${w.type} "${w.key}"): value holds a number JSON cannot carry (too large, e.g. 1e400); send it as a string`);
      ops.push({ op: 'upsert', type: w.type, key: w.key, value: w.value });
    } else {
      if (w.value !== undefined) return err(`ops[${i}] (delete ${w.type} "${w.key}") has a value: a delete takes only type and key`);
      ops.push({ op: 'delete', type: w.type, key: w.key });
    }
    // The very check every agent, subscriber and the SDK run on this op in a change frame: what passes here passes there.
    if (!opCheck.Check(ops[i])) {
      const keyIssue = factKeyProblem(w.key);
      return err(`ops[${i}] (${w.op} ${w.type}): ${keyIssue ? `key ${keyIssue}` : firstOpProblem(ops[i]!)}`);
    }
  }
  const valid = validateOps(ops);
  return valid.ok ? ok(ops) : valid;
}
