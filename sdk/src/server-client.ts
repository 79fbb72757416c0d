import {
  parseAgentsReply, parseChangesReply, parseCreateEnvReply, parseSourcesReply, parseTokenReply, parseEnvsReply, parseFactReply, parseFactsPageReply, parseHeadReply, parseLimitsReply, parseWriteReply,
  type AgentsReply, type ChangesReply, type CreateEnvReply, type SourcesReply, type FactReply, type FactsPageReply, type HeadReply, type LimitsReply, type Op, type Result, type WriteReply,
} from '@factsync/shared';
import { FactsyncClientError } from './errors.js';
import { followChanges, type ChangesOptions, type FollowedChange } from './changes.js';
import type { SyncOptions } from './client.js';

export interface ServerClientOptions {
  /** A factsync server (or a load balancer in front of its replicas), e.g. http://127.0.0.1:7002. */
  url: string;
  /** A server token (AUTH_TOKENS): reader for reads and tail, writer or admin for writes. */
  token?: string;
  /** The env every call addresses (default `default`). */
  env?: string;
  fetch?: typeof fetch;
}

/** A write's place in its producer's sequence: a retry with the same numbers is answered with the first version. */
export interface ProducerNumber {
  id: string;
  seq: number;
}

export interface ServerWriteOptions {
  idempotencyKey?: string;
  producer?: ProducerNumber;
  /** Wait for agents' acks (X-Wait-For `all`, n or ids; not `local`, which only an agent knows). */
  sync?: SyncOptions;
  /** A source's write (X-Source, X-Source-Position): applied once per position; `ops` may then be empty. */
  source?: { name: string; position: string };
}

export interface TokenClaims {
  role: 'admin' | 'writer' | 'agent' | 'reader';
  envs: string[];
  agent_ids?: string[];
  tenants?: string[];
  ttl_seconds: number;
}

export interface ScopePageQuery {
  type?: string;
  tenant?: string;
  cursor?: string;
  limit?: number;
}

/**
 * A typed client of a factsync server (not an agent): reads of the head, the
 * log and the state, writes, and the env's changes as they happen. What the
 * command-line client is built on; every reply is checked against its schema
 * in `@factsync/shared` before it is returned.
 *
 *   const server = createServerClient({ url: 'http://127.0.0.1:7002', token, env: 'default' });
 *   for await (const change of server.changes({ after: 0 })) console.log(change.version, change.ops);
 */
export class FactsyncServerClient {
  readonly env: string;
  private readonly fetch: typeof fetch;

  constructor(readonly opts: ServerClientOptions) {
    this.env = opts.env ?? 'default';
    this.fetch = opts.fetch ?? globalThis.fetch;
  }

  /** The same server and token, another env. */
  withEnv(env: string): FactsyncServerClient {
    return new FactsyncServerClient({ ...this.opts, env });
  }

  head(): Promise<HeadReply> {
    return this.get(`${this.base()}/head`, parseHeadReply);
  }

  limits(): Promise<LimitsReply> {
    return this.get('/v1/limits', parseLimitsReply);
  }

  async envs(): Promise<string[]> {
    return (await this.get('/v1/envs', parseEnvsReply)).envs;
  }

  /** Every source's recorded position in this env. */
  sources(): Promise<SourcesReply> {
    return this.get(`${this.base()}/sources`, parseSourcesReply);
  }

  /** Creates this client's env (an admin token); `created: false` when it existed already. */
  createEnv(): Promise<CreateEnvReply> {
    return this.call('POST', this.base(), parseCreateEnvReply, {});
  }

  agents(): Promise<AgentsReply> {
    return this.get(`${this.base()}/agents`, parseAgentsReply);
  }

  /** One fact of the server's state and the version it was read at; `not_found` when absent. */
  fact(type: string, key: string): Promise<FactReply> {
    return this.get(`${this.base()}/facts/${encodeURIComponent(type)}/${encodeURIComponent(key)}`, parseFactReply);
  }

  /** One page of a scan of the state (a fact may come twice; see `scope` for an exact read). */
  factsPage(q: ScopePageQuery = {}): Promise<FactsPageReply> {
    const p = new URLSearchParams();
    if (q.type !== undefined) p.set('type', q.type);
    if (q.tenant !== undefined) p.set('tenant', q.tenant);
    if (q.cursor !== undefined) p.set('cursor', q.cursor);
    if (q.limit !== undefined) p.set('limit', String(q.limit));
    const qs = p.toString();
    return this.get(`${this.base()}/facts${qs ? `?${qs}` : ''}`, parseFactsPageReply);
  }

  /**
   * Changes after `after` (at most `limit`); `log_truncated` (410) once the log no longer reaches back.
   * With `types` and/or `tenants`, only that share's ops, each change linked to the one before by `prev`.
   */
  changesPage(after: number, limit = 1000, types?: readonly string[], tenants?: readonly string[]): Promise<ChangesReply> {
    const only = (types?.length ? `&types=${encodeURIComponent(types.join(','))}` : '') + (tenants?.length ? `&tenants=${encodeURIComponent(tenants.join(','))}` : '');
    return this.get(`${this.base()}/changes?after=${after}&limit=${limit}${only}`, parseChangesReply);
  }

  /** Mints a JWT (an admin token, on a server with JWT_SECRET). */
  mintToken(claims: TokenClaims): Promise<{ token: string; expires_at: string }> {
    return this.call('POST', '/v1/tokens', parseTokenReply, { 'content-type': 'application/json' }, JSON.stringify(claims));
  }

  /** Applies `ops` as one version. With `producer` or `idempotencyKey`, a retry applies nothing twice. */
  async write(ops: readonly Op[], o: ServerWriteOptions = {}): Promise<WriteReply> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (o.idempotencyKey !== undefined) headers['idempotency-key'] = o.idempotencyKey;
    if (o.producer) {
      headers['x-producer-id'] = o.producer.id;
      headers['x-producer-seq'] = String(o.producer.seq);
    }
    if (o.source) {
      headers['x-source'] = o.source.name;
      headers['x-source-position'] = o.source.position;
    }
    if (o.sync?.timeout !== undefined) headers['x-wait-timeout'] = String(o.sync.timeout);
    if (o.sync?.waitFor !== undefined) headers['x-wait-for'] = Array.isArray(o.sync.waitFor) ? o.sync.waitFor.join(',') : String(o.sync.waitFor);
    if (o.sync?.policy) headers['x-timeout-policy'] = o.sync.policy;
    return this.call('POST', `${this.base()}/facts`, parseWriteReply, headers, JSON.stringify({ ops }));
  }

  /**
   * The env's changes from `after` + 1, in order, each once, as they are
   * written: over HTTP up to the head, then live over the websocket as a
   * subscriber; after a disconnect it resumes where it stopped. Ends when
   * `signal` aborts (or, with `untilHead`, once it reached the head it saw
   * first); throws when the history cannot continue (log trimmed past it,
   * store reset).
   */
  changes(o: ChangesOptions = {}): AsyncIterable<FollowedChange> {
    return followChanges(this, o);
  }

  /** The server's URL and token for a websocket (used by `changes`). */
  get socket(): { url: string; token: string | undefined; env: string } {
    return { url: this.opts.url, token: this.opts.token, env: this.env };
  }

  private base(): string {
    return `/v1/envs/${encodeURIComponent(this.env)}`;
  }

  private get<T>(path: string, parse: (body: unknown) => Result<T>): Promise<T> {
    return this.call('GET', path, parse, {});
  }

  private async call<T>(method: string, path: string, parse: (body: unknown) => Result<T>, headers: Record<string, string>, body?: string): Promise<T> {
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    let res: Response;
    try {
      res = await this.fetch(new URL(path, this.opts.url), { method, headers, body });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new FactsyncClientError('network_error', 0, `cannot reach the server at ${this.opts.url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = { message: `HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 120)}` };
    }
    if (!res.ok) throw FactsyncClientError.fromBody(res.status, parsed);
    const r = parse(parsed);
    if (!r.ok) throw new FactsyncClientError('internal', res.status, `${r.error}: is ${this.opts.url} a factsync server?`);
    return r.value;
  }
}

export const createServerClient = (opts: ServerClientOptions) => new FactsyncServerClient(opts);
