import type { AttrPath, Condition, Operand, Scalar } from '@factsync/shared';

/** What a condition reads: the user's and the resource's merged attributes. */
export interface Subjects {
  user: Record<string, unknown>;
  resource: Record<string, unknown>;
}
export type Predicate = (s: Subjects) => boolean;

const isScalar = (v: unknown): v is Scalar => typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number';
const present = (v: unknown): boolean => v !== undefined && v !== null;
const read = (p: AttrPath) => (s: Subjects): unknown => (Object.hasOwn(s[p.side], p.name) ? s[p.side][p.name] : undefined);
const inArray = (arr: readonly unknown[], x: unknown): boolean => arr.some((y) => y === x);

/**
 * Compiles a parsed condition into a closure, once, when the condition set is
 * applied; a check then only calls closures. Every comparison is total: a
 * missing attribute or a value of another type compares false.
 */
export function compileCondition(c: Condition): Predicate {
  switch (c.kind) {
    case 'all': {
      const of = c.of.map(compileCondition);
      return (s) => of.every((p) => p(s));
    }
    case 'any': {
      const of = c.of.map(compileCondition);
      return (s) => of.some((p) => p(s));
    }
    case 'not': {
      const p = compileCondition(c.of);
      return (s) => !p(s);
    }
    case 'cmp': {
      const left = read(c.path);
      const right = operand(c.operand);
      const test = comparator(c.op);
      return (s) => {
        const a = left(s);
        const b = right(s);
        return present(a) && present(b) && test(a, b);
      };
    }
  }
}

function operand(o: Operand): (s: Subjects) => unknown {
  if (o.kind === 'ref') return read(o.path);
  const v = o.value;
  return () => v;
}

function comparator(op: Condition & { kind: 'cmp' } extends { op: infer O } ? O : never): (a: unknown, b: unknown) => boolean {
  switch (op) {
    case 'equals': return (a, b) => isScalar(a) && isScalar(b) && a === b;
    // Cedar's != : any two values of which neither is missing; arrays never equal a scalar.
    case 'not-equals': return (a, b) => !(isScalar(a) && isScalar(b) && a === b) && !(Array.isArray(a) && Array.isArray(b) && sameSet(a, b));
    case 'less-than': return (a, b) => typeof a === 'number' && typeof b === 'number' && a < b;
    case 'less-than-equals': return (a, b) => typeof a === 'number' && typeof b === 'number' && a <= b;
    case 'greater-than': return (a, b) => typeof a === 'number' && typeof b === 'number' && a > b;
    case 'greater-than-equals': return (a, b) => typeof a === 'number' && typeof b === 'number' && a >= b;
    case 'contains': return (a, b) => typeof a === 'string' && typeof b === 'string' && a.includes(b);
    case 'array_contains': return (a, b) => Array.isArray(a) && isScalar(b) && inArray(a, b);
    case 'array_superset': return (a, b) => Array.isArray(a) && Array.isArray(b) && b.every((x) => inArray(a, x));
    case 'array_subset': return (a, b) => Array.isArray(a) && Array.isArray(b) && a.every((x) => inArray(b, x));
    case 'array_intersect': return (a, b) => Array.isArray(a) && Array.isArray(b) && a.some((x) => inArray(b, x));
  }
}

function sameSet(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.every((x) => inArray(b, x)) && b.every((x) => inArray(a, x));
}
