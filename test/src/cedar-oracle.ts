import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { parseCondition, type CheckRequest, type Condition, type Op, type Operand } from '@factsync/shared';

/**
 * The same model as Cedar policies and entities, written independently of the
 * evaluator (it shares only the condition parser, whose grammar is tested on
 * its own): tenant roles and their `extends` as a Role hierarchy per tenant,
 * role holdings `O#role` as Rel entities whose parents say who else holds them
 * (subject sets, `granted_to` derivations, roles that extend them), condition
 * sets as `when` clauses. Cedar then answers the checks.
 */

type Entity = cedar.EntityJson;
const uid = (type: string, id: string) => ({ type, id });
const lit = (v: unknown) => JSON.stringify(v);

interface Facts { [type: string]: Map<string, Record<string, unknown>> }

export class CedarOracle {
  private readonly facts: Facts = {};
  private readonly policies: string[] = [];
  private readonly base = new Map<string, Entity>();
  private prepared: string | undefined;

  constructor(ops: readonly Op[]) {
    for (const op of ops) {
      const m = (this.facts[op.type] ??= new Map());
      if (op.op === 'upsert') m.set(op.key, op.value);
      else m.delete(op.key);
    }
    this.build();
  }

  private all(type: string): [string, Record<string, unknown>][] {
    return [...(this.facts[type] ?? new Map()).entries()];
  }

  private entity(type: string, id: string): Entity {
    const k = `${type}::${id}`;
    let e = this.base.get(k);
    if (!e) this.base.set(k, (e = { uid: uid(type, id), attrs: {}, parents: [] }));
    return e;
  }

  private parent(child: Entity, type: string, id: string): void {
    if (!child.parents.some((p) => (p as { type: string; id: string }).type === type && (p as { id: string }).id === id)) child.parents.push(uid(type, id));
    this.entity(type, id);
  }

  private build(): void {
    // A role assignment names its tenant; whether a tenant fact exists does not matter to a decision.
    const tenants = [...new Set(['default', ...this.all('tenant').map(([k]) => k), ...this.all('role_assignment').map(([, v]) => v.tenant as string)])];
    const tenantExpr = '(if context has tenant then context.tenant else if resource has storedTenant then resource.storedTenant else "default")';

    // RBAC: Role::"t/r" per tenant; extends = parent; a policy per own permission.
    for (const [role, v] of this.all('role')) {
      for (const t of tenants) {
        const e = this.entity('Role', `${t}/${role}`);
        for (const x of (v.extends as string[] | undefined) ?? []) this.parent(e, 'Role', `${t}/${x}`);
        for (const p of v.permissions as string[]) {
          const type = p.slice(0, p.indexOf(':'));
          this.policies.push(`permit(principal in Role::${lit(`${t}/${role}`)}, action == Action::${lit(p)}, resource) when { resource.type == ${lit(type)} && ${tenantExpr} == ${lit(t)} };`);
        }
      }
    }
    for (const [, v] of this.all('role_assignment')) this.parent(this.entity('User', v.user as string), 'Role', `${v.tenant}/${v.role}`);

    // ReBAC: holders of Rel::"O#R".
    const roleDefs = this.all('resource_role').map(([k, v]) => ({ type: k.slice(0, k.indexOf('#')), role: k.slice(k.indexOf('#') + 1), v }));
    const instances = new Map<string, Set<string>>();
    const addInstance = (o: string) => {
      const t = o.slice(0, o.indexOf(':'));
      let set = instances.get(t);
      if (!set) instances.set(t, (set = new Set()));
      set.add(o);
    };
    for (const [k] of this.all('resource_instance')) addInstance(k);
    for (const [, v] of this.all('relationship')) addInstance(v.object as string), addInstance((v.subject as string).split('#')[0]!);
    for (const { type, role, v } of roleDefs) {
      for (const a of v.permissions as string[]) {
        this.policies.push(`permit(principal, action == Action::${lit(`${type}:${a}`)}, resource) when { resource.type == ${lit(type)} && resource has rel_${role} && principal in resource.rel_${role} };`);
      }
      // Whoever holds a role extending this one holds this one.
      for (const x of (v.extends as string[] | undefined) ?? []) {
        for (const o of instances.get(type) ?? []) this.parent(this.entity('Rel', `${o}#${role}`), 'Rel', `${o}#${x}`);
      }
      for (const g of (v.granted_to as { role: string; on: string; via: string }[] | undefined) ?? []) {
        for (const [, r] of this.all('relationship')) {
          const o = r.object as string;
          const subject = r.subject as string;
          if (o.startsWith(`${type}:`) && r.relation === g.via && subject.startsWith(`${g.on}:`) && !subject.includes('#')) {
            this.parent(this.entity('Rel', `${subject}#${g.role}`), 'Rel', `${o}#${role}`);
          }
        }
      }
    }
    for (const [, r] of this.all('relationship')) {
      const node = `${r.object}#${r.relation}`;
      const s = r.subject as string;
      if (s.startsWith('user:')) this.parent(this.entity('User', s.slice(5)), 'Rel', node);
      else if (s.includes('#')) this.parent(this.entity('Rel', s), 'Rel', node);
    }

    // ABAC
    const sets = new Map(this.all('condition_set'));
    for (const [, rule] of this.all('condition_set_rule')) {
      const us = sets.get(rule.user_set as string);
      if (!us || us.kind !== 'userset') continue;
      const perm = rule.permission as string;
      const type = perm.slice(0, perm.indexOf(':'));
      const rs = sets.get(rule.resource_set as string);
      let resourceCond: string;
      if (!rs) {
        if (rule.resource_set !== type) continue;
        resourceCond = 'true';
      } else {
        if (rs.kind !== 'resourceset' || (rs.resource !== undefined && rs.resource !== type)) continue;
        resourceCond = this.condition(rs.conditions, tenantExpr);
      }
      this.policies.push(`permit(principal, action == Action::${lit(perm)}, resource) when { resource.type == ${lit(type)} && ${this.condition(us.conditions, tenantExpr)} && ${resourceCond} };`);
    }
  }

  private condition(json: unknown, tenantExpr: string): string {
    const parsed = parseCondition(json);
    if (!parsed.ok) throw new Error(parsed.error);
    const side = (s: 'user' | 'resource') => (s === 'user' ? 'principal' : 'resource');
    const access = (p: { side: 'user' | 'resource'; name: string }) =>
      p.side === 'resource' && p.name === 'tenant' ? tenantExpr : `${side(p.side)}[${lit(p.name)}]`;
    const has = (p: { side: 'user' | 'resource'; name: string }) =>
      p.side === 'resource' && p.name === 'tenant' ? 'true' : `${side(p.side)} has ${lit(p.name)}`;
    const value = (o: Operand) => (o.kind === 'ref' ? access(o.path) : lit(o.value));
    const walk = (c: Condition): string => {
      switch (c.kind) {
        case 'all': return c.of.length === 0 ? 'true' : `(${c.of.map(walk).join(' && ')})`;
        case 'any': return c.of.length === 0 ? 'false' : `(${c.of.map(walk).join(' || ')})`;
        case 'not': return `!(${walk(c.of)})`;
        case 'cmp': {
          const a = access(c.path);
          const b = value(c.operand);
          const guard = [has(c.path), ...(c.operand.kind === 'ref' ? [has(c.operand.path)] : [])].join(' && ');
          const cmp = {
            equals: `${a} == ${b}`, 'not-equals': `${a} != ${b}`,
            'less-than': `${a} < ${b}`, 'less-than-equals': `${a} <= ${b}`, 'greater-than': `${a} > ${b}`, 'greater-than-equals': `${a} >= ${b}`,
            contains: `${a} like ${lit(`*${String((c.operand as { value: string }).value)}*`)}`,
            array_contains: `${a}.contains(${b})`, array_superset: `${a}.containsAll(${b})`, array_subset: `${b}.containsAll(${a})`, array_intersect: `${a}.containsAny(${b})`,
          }[c.op];
          return `(${guard} && ${cmp})`;
        }
      }
    };
    return walk(parsed.value);
  }

  /**
   * Cedar at its fastest, for benchmarks: the policy set parsed once
   * (`preparsePolicySet`) and each request given only the entities it needs.
   */
  prepare(id: string): void {
    const r = cedar.preparsePolicySet(id, { staticPolicies: this.policies.join('\n') });
    if (r.type !== 'success') throw new Error(`cedar could not parse the policies: ${JSON.stringify(r.errors)}`);
    this.prepared = id;
  }

  get policyCount(): number {
    return this.policies.length;
  }

  /** Cedar's answer to one check. */
  isAllowed(c: CheckRequest): boolean {
    const userKey = typeof c.user === 'string' ? c.user : c.user.key;
    const jit = typeof c.user === 'string' ? {} : c.user.attributes ?? {};
    if (typeof c.resource === 'string') throw new Error('the oracle takes resources as objects');
    const res = c.resource;
    const id = res.key ? `${res.type}:${res.key}` : res.type;

    const stored = this.facts.user?.get(userKey);
    const userAttrs: Record<string, unknown> = { ...((stored?.attributes as object) ?? {}) };
    for (const [, a] of this.all('attribute')) if (a.entity === `user:${userKey}`) userAttrs[a.attribute as string] = a.value;
    Object.assign(userAttrs, jit, { key: userKey });

    const resourceAttrs: Record<string, unknown> = { type: res.type };
    if (res.key) {
      const inst = this.facts.resource_instance?.get(id);
      Object.assign(resourceAttrs, (inst?.attributes as object) ?? {});
      for (const [, a] of this.all('attribute')) if (a.entity === id) resourceAttrs[a.attribute as string] = a.value;
      if (inst) resourceAttrs.storedTenant = inst.tenant;
      resourceAttrs.key = res.key;
      for (const [k] of this.all('resource_role')) {
        if (k.startsWith(`${res.type}#`)) resourceAttrs[`rel_${k.slice(k.indexOf('#') + 1)}`] = { __entity: uid('Rel', `${id}#${k.slice(k.indexOf('#') + 1)}`) };
      }
    }
    Object.assign(resourceAttrs, res.attributes ?? {});

    const principal = { ...(this.base.get(`User::${userKey}`) ?? { uid: uid('User', userKey), parents: [] }), attrs: userAttrs } as Entity;
    const resource: Entity = { uid: uid('Res', id), attrs: resourceAttrs as Entity['attrs'], parents: [] };
    let entities: Entity[];
    if (this.prepared) {
      // What a real integration passes: the principal and its ancestors, and the resource.
      entities = [principal, resource];
      const seen = new Set<string>();
      const stack = [...principal.parents] as { type: string; id: string }[];
      while (stack.length > 0) {
        const p = stack.pop()!;
        const k = `${p.type}::${p.id}`;
        if (seen.has(k)) continue;
        seen.add(k);
        const e = this.base.get(k);
        if (!e) continue;
        entities.push(e);
        stack.push(...(e.parents as { type: string; id: string }[]));
      }
    } else {
      entities = [...this.base.values()].filter((e) => (e.uid as { type: string }).type !== 'User' || (e.uid as { id: string }).id !== userKey);
      entities.push(principal, resource);
    }
    const request = {
      principal: uid('User', userKey), action: uid('Action', `${res.type}:${c.action}`), resource: uid('Res', id),
      context: (res.tenant ? { tenant: res.tenant } : {}) as cedar.Context, entities,
    };
    const answer = this.prepared
      ? cedar.statefulIsAuthorized({ ...request, preparsedPolicySetId: this.prepared })
      : cedar.isAuthorized({ ...request, policies: { staticPolicies: this.policies.join('\n') } });
    if (answer.type !== 'success') throw new Error(`cedar failed: ${JSON.stringify(answer.errors)}`);
    if (answer.response.diagnostics.errors.length > 0) throw new Error(`cedar policy errors: ${JSON.stringify(answer.response.diagnostics.errors)}`);
    return answer.response.decision === 'allow';
  }
}
