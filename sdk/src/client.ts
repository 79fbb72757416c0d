import {
  conditionSetRuleKey, resourceRoleKey,
  type AgentStatus, type AttributeInput, type AttributeRef, type CheckRequest, type ConditionSetRuleValue, type ConditionSetValue, type Fact, type Op,
  type RelationshipInput, type ResourceInstanceValue, type ResourceRoleValue, type ResourceValue, type RoleAssignmentInput, type SyncStatus,
  type TenantFields, type TenantRoleValue, type UserFields, type UserPermissionsRequest,
} from '@factsync/shared';
import { FactsyncClientError } from './errors.js';

export interface ClientOptions {
  /** The pdp-agent's local API, e.g. http://127.0.0.1:7766. */
  url: string;
  /** AGENT_API_TOKEN, when the agent requires one. */
  token?: string;
  /** Defaults for every write made through this client (see waitForSync). */
  sync?: SyncOptions;
  fetch?: typeof fetch;
}

export interface SyncOptions {
  /** Seconds: 0 = answer at once, > 0 = wait up to, < 0 = wait until synced. */
  timeout?: number;
  /** 'local' (this agent, the default), 'all', a number of agents, or agent ids. */
  waitFor?: 'local' | 'all' | number | string[];
  /** 'fail' turns a timed-out wait into a `sync_timeout` error instead of `synced: false`. */
  policy?: 'ignore' | 'fail';
}

export interface WriteResult {
  version: number;
  /** The epoch of `version`: pass the whole result (or `version.epoch`) as `atLeast` to read this write anywhere. */
  epoch: string;
  synced: boolean;
  applied: number;
  sync?: SyncStatus;
  /**
   * What was probably not meant, though the write was applied as sent: a custom
   * type one edit from a well-known one ("users"), a wait for an agent id the
   * env has never seen. Absent when there is nothing to say.
   */
  warnings?: string[];
}

export interface Page {
  facts: Fact[];
  next_cursor: string | null;
}


type BulkUser = UserFields & { key: string };

/**
 * What `atLeast` takes: a write's result (its version in its epoch, the safe
 * form), a token `"V.EPOCH"`, or a bare version (of the epoch the agent last
 * heard: after a store loss the old 5 is not the new 5).
 */
export type AtLeast = number | string | { version: number; epoch: string };
export const atLeastToken = (a: AtLeast): string => (typeof a === 'object' ? `${a.version}.${a.epoch}` : String(a));

/** Read your writes: decide only once the agent applied this version (e.g. the result a write returned). */
export interface CheckOptions {
  atLeast?: AtLeast;
  /** Seconds to wait for `atLeast` (X-Wait-Timeout). */
  timeout?: number;
  /** Return why (the role, derivation or rule) in `reason`. */
  debug?: boolean;
}
export interface Decision { allow: boolean; result: boolean; version: number; reason?: string }
export type CheckUser = CheckRequest['user'];
export type CheckResource = CheckRequest['resource'];
export type UserPermissions = Record<string, { permissions: string[]; roles: string[]; tenant?: { key: string; attributes: object }; resource?: { key: string; type: string; attributes: object } }>;

/**
 * A typed client of a pdp-agent. Every write returns `{version, synced, applied}`;
 * pass the version to `facts.get(..., {atLeast})` on any agent to read your write.
 *
 *   const fs = createClient({ url: 'http://127.0.0.1:7766' });
 *   const { version } = await fs.waitForSync({ timeout: 5, waitFor: 'all' }).users.sync('john@x.io', { email: 'john@x.io' });
 */
export class FactsyncClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly opts: ClientOptions) {
    this.fetch = opts.fetch ?? globalThis.fetch;
  }

  /** A client whose writes wait as given, like the Python SDK's `wait_for_sync(timeout=…)`. */
  waitForSync(sync: SyncOptions): FactsyncClient {
    return new FactsyncClient({ ...this.opts, sync: { ...this.opts.sync, ...sync } });
  }

  write(ops: Op[]): Promise<WriteResult> {
    return this.send('POST', '/v1/facts', { ops });
  }

  readonly users = {
    sync: (key: string, fields: UserFields = {}) => this.send<WriteResult>('PUT', `/v1/facts/users/${encodeURIComponent(key)}`, fields),
    delete: (key: string) => this.send<WriteResult>('DELETE', `/v1/facts/users/${encodeURIComponent(key)}`),
  };

  readonly tenants = {
    create: (key: string, fields: TenantFields = {}) => this.send<WriteResult>('PUT', `/v1/facts/tenants/${encodeURIComponent(key)}`, fields),
    delete: (key: string) => this.send<WriteResult>('DELETE', `/v1/facts/tenants/${encodeURIComponent(key)}`),
  };

  readonly roleAssignments = {
    assign: (a: RoleAssignmentInput) => this.send<WriteResult>('POST', '/v1/facts/role_assignments', a),
    unassign: (a: RoleAssignmentInput) => this.send<WriteResult>('DELETE', '/v1/facts/role_assignments', a),
  };

  readonly relationships = {
    /** An object `{object, relation, subject}` or a tuple string `document:1#editor@user:1`. */
    write: (r: RelationshipInput | string) => this.send<WriteResult>('POST', '/v1/facts/relationships', typeof r === 'string' ? { tuple: r } : r),
    delete: (r: RelationshipInput | string) => this.send<WriteResult>('DELETE', '/v1/facts/relationships', typeof r === 'string' ? { tuple: r } : r),
  };

  readonly attributes = {
    /** An object `{entity, attribute, kind, value}` or a tuple string `document:1$is_private|boolean:true`. */
    write: (a: AttributeInput | string) => this.send<WriteResult>('POST', '/v1/facts/attributes', typeof a === 'string' ? { tuple: a } : a),
    delete: (a: AttributeRef | string) => this.send<WriteResult>('DELETE', '/v1/facts/attributes', typeof a === 'string' ? { tuple: a } : a),
  };

  readonly bulk = {
    /** Up to 10,000 users (with their roles) as one version. */
    users: (users: BulkUser[]) => this.send<WriteResult>('POST', '/v1/facts/bulk/users', { users }),
  };

  readonly facts = {
    /** The agent's copy of a fact; with `atLeast`, first wait until the agent has applied that version. */
    get: (type: string, key: string, o: { atLeast?: AtLeast; timeout?: number } = {}) =>
      this.send<Fact>('GET', `/v1/facts/${encodeURIComponent(type)}/${encodeURIComponent(key)}${atLeastQuery(o)}`,
        undefined, o.timeout !== undefined ? { 'x-wait-timeout': String(o.timeout) } : {}),
    list: (type: string, o: { limit?: number; cursor?: string } = {}) => {
      const q = new URLSearchParams({ type, ...(o.limit ? { limit: String(o.limit) } : {}), ...(o.cursor ? { cursor: o.cursor } : {}) });
      return this.send<Page>('GET', `/v1/facts?${q}`);
    },
  };

  /**
   * Is `user` allowed to `action` on `resource`? Two lines close the loop:
   *   const written = await fs.roleAssignments.assign({ user: 'john', role: 'admin' });
   *   await fs.check('john', 'read', 'document:1', { atLeast: written });   // on any agent: the write's result
   */
  async check(user: CheckUser, action: string, resource: CheckResource, o: CheckOptions = {}): Promise<boolean> {
    return (await this.decide(user, action, resource, o)).allow;
  }

  /** The whole answer of a check: allow, the version it was decided at, and with `debug` the reason. */
  decide(user: CheckUser, action: string, resource: CheckResource, o: CheckOptions = {}): Promise<Decision> {
    return this.send<Decision>('POST', `/allowed${atLeastQuery(o)}`, { user, action, resource, ...(o.debug ? { debug: true } : {}) }, waitHeader(o));
  }

  /** Several checks decided at one version; answers in order. */
  async bulkCheck(checks: { user: CheckUser; action: string; resource: CheckResource }[], o: CheckOptions = {}): Promise<boolean[]> {
    const r = await this.send<{ allow: { allow: boolean }[] }>('POST', `/allowed/bulk${atLeastQuery(o)}`, checks, waitHeader(o));
    return r.allow.map((a) => a.allow);
  }

  /** Per tenant and resource instance, the user's roles and permissions (Permit's shape). */
  userPermissions(q: UserPermissionsRequest, o: CheckOptions = {}): Promise<UserPermissions> {
    return this.send('POST', `/user-permissions${atLeastQuery(o)}`, q, waitHeader(o));
  }

  /** The policy model as facts: each call is one version, like every other write. */
  readonly policy = {
    resources: {
      upsert: (type: string, v: ResourceValue) => this.write([upsertOp('resource', type, v)]),
      delete: (type: string) => this.write([deleteOp('resource', type)]),
    },
    roles: {
      upsert: (key: string, v: TenantRoleValue) => this.write([upsertOp('role', key, v)]),
      delete: (key: string) => this.write([deleteOp('role', key)]),
    },
    resourceRoles: {
      upsert: (type: string, role: string, v: ResourceRoleValue) => this.write([upsertOp('resource_role', resourceRoleKey(type, role), v)]),
      delete: (type: string, role: string) => this.write([deleteOp('resource_role', resourceRoleKey(type, role))]),
    },
    resourceInstances: {
      upsert: (key: string, v: ResourceInstanceValue) => this.write([upsertOp('resource_instance', key, v)]),
      delete: (key: string) => this.write([deleteOp('resource_instance', key)]),
    },
    conditionSets: {
      upsert: (key: string, v: ConditionSetValue) => this.write([upsertOp('condition_set', key, v)]),
      delete: (key: string) => this.write([deleteOp('condition_set', key)]),
    },
    setRules: {
      create: (v: ConditionSetRuleValue) => this.write([upsertOp('condition_set_rule', conditionSetRuleKey(v), v)]),
      delete: (v: ConditionSetRuleValue) => this.write([deleteOp('condition_set_rule', conditionSetRuleKey(v))]),
    },
  };

  status(): Promise<AgentStatus> {
    return this.send('GET', '/v1/status');
  }

  private async send<T>(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<T> {
    const headers: Record<string, string> = { ...extra };
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const s = this.opts.sync;
    if (method !== 'GET' && s) {
      if (s.timeout !== undefined) headers['x-wait-timeout'] = String(s.timeout);
      if (s.waitFor !== undefined) headers['x-wait-for'] = Array.isArray(s.waitFor) ? s.waitFor.join(',') : String(s.waitFor);
      if (s.policy) headers['x-timeout-policy'] = s.policy;
    }
    let res: Response;
    try {
      res = await this.fetch(new URL(path, this.opts.url), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new FactsyncClientError('network_error', 0, `cannot reach the agent at ${this.opts.url}: ${(e as Error).message}`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = { message: text.slice(0, 200) };
    }
    if (!res.ok) throw FactsyncClientError.fromBody(res.status, parsed);
    return parsed as T;
  }
}

const upsertOp = (type: string, key: string, value: object): Op => ({ op: 'upsert', type, key, value: value as Record<string, unknown> });
const deleteOp = (type: string, key: string): Op => ({ op: 'delete', type, key });
const atLeastQuery = (o: { atLeast?: AtLeast }) => (o.atLeast !== undefined ? `?at_least=${encodeURIComponent(atLeastToken(o.atLeast))}` : '');
const waitHeader = (o: CheckOptions): Record<string, string> => (o.timeout !== undefined ? { 'x-wait-timeout': String(o.timeout) } : {});

export const createClient = (opts: ClientOptions) => new FactsyncClient(opts);
