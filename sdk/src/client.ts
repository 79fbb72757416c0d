import type {
  AgentStatus, AttributeInput, AttributeRef, Fact, Op, RelationshipInput, RoleAssignmentInput, SyncStatus, TenantFields, UserFields,
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
  synced: boolean;
  applied: number;
  sync?: SyncStatus;
}

export interface Page {
  facts: Fact[];
  next_cursor: string | null;
}


type BulkUser = UserFields & { key: string };

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
    get: (type: string, key: string, o: { atLeast?: number; timeout?: number } = {}) =>
      this.send<Fact>('GET', `/v1/facts/${encodeURIComponent(type)}/${encodeURIComponent(key)}${o.atLeast !== undefined ? `?at_least=${o.atLeast}` : ''}`,
        undefined, o.timeout !== undefined ? { 'x-wait-timeout': String(o.timeout) } : {}),
    list: (type: string, o: { limit?: number; cursor?: string } = {}) => {
      const q = new URLSearchParams({ type, ...(o.limit ? { limit: String(o.limit) } : {}), ...(o.cursor ? { cursor: o.cursor } : {}) });
      return this.send<Page>('GET', `/v1/facts?${q}`);
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

export const createClient = (opts: ClientOptions) => new FactsyncClient(opts);
