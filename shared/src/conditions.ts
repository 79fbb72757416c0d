import { err, ok, type Result } from './result.js';

/**
 * Permit's condition JSON (docs/api.md, "Decisions on the agent"), parsed once
 * into a small tree that the agent compiles to closures. Defined here so the
 * write path (validation) and the evaluator read one grammar:
 *
 *   {"allOf": [cond, …]} | {"anyOf": [cond, …]} | {"not": cond}
 *   | {"user.department": {"equals": "Engineering"}}
 *   | {"resource.owner": {"equals": {"ref": "user.key"}}}
 *
 * An object with several attribute keys means all of them. A comparison with a
 * missing attribute, or with a value of another type, is false (so `not` of it
 * is true): a condition never errors at check time.
 */

export const CONDITION_OPERATORS = [
  'equals', 'not-equals',
  'less-than', 'less-than-equals', 'greater-than', 'greater-than-equals',
  'contains',
  'array_contains', 'array_subset', 'array_superset', 'array_intersect',
] as const;
export type ConditionOperator = (typeof CONDITION_OPERATORS)[number];

export type Scalar = string | number | boolean;
/** `user.department`, `resource.owner`: the side and the attribute name. */
export interface AttrPath { side: 'user' | 'resource'; name: string }
export type Operand = { kind: 'value'; value: Scalar | Scalar[] } | { kind: 'ref'; path: AttrPath };

export type Condition =
  | { kind: 'all'; of: Condition[] }
  | { kind: 'any'; of: Condition[] }
  | { kind: 'not'; of: Condition }
  | { kind: 'cmp'; path: AttrPath; op: ConditionOperator; operand: Operand };

export const MAX_CONDITION_NODES = 256;
export const MAX_CONDITION_DEPTH = 16;

const SCALAR_OPS = new Set<ConditionOperator>(['equals', 'not-equals', 'array_contains']);
const NUMBER_OPS = new Set<ConditionOperator>(['less-than', 'less-than-equals', 'greater-than', 'greater-than-equals']);
const ARRAY_OPS = new Set<ConditionOperator>(['array_subset', 'array_superset', 'array_intersect']);
const isScalar = (v: unknown): v is Scalar => typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

export function parseAttrPath(text: string, where: string): Result<AttrPath> {
  const m = /^(user|resource)\.([A-Za-z_][A-Za-z0-9_-]{0,127})$/.exec(text);
  if (!m) return err(`${where}: ${JSON.stringify(text)} is not an attribute reference; write user.<name> or resource.<name>, e.g. user.department`);
  return ok({ side: m[1] as AttrPath['side'], name: m[2]! });
}

/** Parses Permit's condition JSON; every error names the path of the offending node. */
export function parseCondition(json: unknown, where = 'conditions'): Result<Condition> {
  let nodes = 0;
  const walk = (node: unknown, at: string, depth: number): Result<Condition> => {
    if (++nodes > MAX_CONDITION_NODES) return err(`${where}: more than ${MAX_CONDITION_NODES} nodes; split the condition set`);
    if (depth > MAX_CONDITION_DEPTH) return err(`${at}: nests deeper than ${MAX_CONDITION_DEPTH} levels`);
    if (!isObject(node)) return err(`${at}: expected an object such as {"allOf": [...]} or {"user.department": {"equals": "Engineering"}}`);
    const keys = Object.keys(node);
    if (keys.length === 0) return err(`${at}: empty condition; use {"allOf": []} for "always"`);
    const parts: Condition[] = [];
    for (const k of keys) {
      const v = node[k];
      const here = `${at}.${k}`;
      if (k === 'allOf' || k === 'anyOf') {
        if (!Array.isArray(v)) return err(`${here}: expected an array of conditions`);
        const of: Condition[] = [];
        for (let i = 0; i < v.length; i++) {
          const c = walk(v[i], `${here}[${i}]`, depth + 1);
          if (!c.ok) return c;
          of.push(c.value);
        }
        parts.push({ kind: k === 'allOf' ? 'all' : 'any', of });
      } else if (k === 'not') {
        const c = walk(v, here, depth + 1);
        if (!c.ok) return c;
        parts.push({ kind: 'not', of: c.value });
      } else {
        const path = parseAttrPath(k, at);
        if (!path.ok) return err(`${path.error}, or a logical operator allOf, anyOf, not`);
        if (!isObject(v) || Object.keys(v).length !== 1) {
          return err(`${here}: expected one operator, e.g. {"equals": "Engineering"}; operators: ${CONDITION_OPERATORS.join(', ')}`);
        }
        const [op, raw] = Object.entries(v)[0]!;
        if (!(CONDITION_OPERATORS as readonly string[]).includes(op)) {
          return err(`${here}: unknown operator ${JSON.stringify(op)}; use one of ${CONDITION_OPERATORS.join(', ')}`);
        }
        const operand = parseOperand(raw, op as ConditionOperator, `${here}.${op}`);
        if (!operand.ok) return operand;
        parts.push({ kind: 'cmp', path: path.value, op: op as ConditionOperator, operand: operand.value });
      }
    }
    return ok(parts.length === 1 ? parts[0]! : { kind: 'all', of: parts });
  };
  return walk(json, where, 1);
}

function parseOperand(raw: unknown, op: ConditionOperator, at: string): Result<Operand> {
  if (isObject(raw)) {
    if (Object.keys(raw).length !== 1 || typeof raw.ref !== 'string') return err(`${at}: an object operand must be {"ref": "user.<name>"} or {"ref": "resource.<name>"}`);
    const path = parseAttrPath(raw.ref, at);
    return path.ok ? ok({ kind: 'ref', path: path.value }) : path;
  }
  if (SCALAR_OPS.has(op)) {
    if (!isScalar(raw)) return err(`${at}: expected a string, number or boolean`);
  } else if (NUMBER_OPS.has(op)) {
    if (typeof raw !== 'number' || !Number.isFinite(raw)) return err(`${at}: expected a number`);
  } else if (op === 'contains') {
    if (typeof raw !== 'string') return err(`${at}: expected a string (contains is a substring test; for arrays use array_contains)`);
  } else if (ARRAY_OPS.has(op)) {
    if (!Array.isArray(raw) || !raw.every(isScalar)) return err(`${at}: expected an array of strings, numbers or booleans`);
    return ok({ kind: 'value', value: raw as Scalar[] });
  }
  return ok({ kind: 'value', value: raw as Scalar });
}

/** The nodes of a condition: what testing it costs at most, in a check's work budget. */
export function conditionNodes(c: Condition): number {
  switch (c.kind) {
    case 'all': case 'any': return c.of.reduce((n, x) => n + conditionNodes(x), 1);
    case 'not': return 1 + conditionNodes(c.of);
    case 'cmp': return 1;
  }
}

/** Attribute names a condition reads, per side (the evaluator builds only what is read). */
export function conditionReads(c: Condition, out: { user: boolean; resource: boolean } = { user: false, resource: false }) {
  switch (c.kind) {
    case 'all': case 'any': for (const x of c.of) conditionReads(x, out); break;
    case 'not': conditionReads(c.of, out); break;
    case 'cmp':
      out[c.path.side] = true;
      if (c.operand.kind === 'ref') out[c.operand.path.side] = true;
  }
  return out;
}
