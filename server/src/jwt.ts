import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import {
  SignJWT, createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify,
  type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey,
} from 'jose';
import { AGENT_ID_PATTERN, ConfigError, ENV_PATTERN, FactsyncError } from '@factsync/shared';
import { ROLES, type Principal, type Role } from './roles.js';
import { sha256 } from './static-tokens.js';

export interface JwtOptions {
  /** HS256: the shared secret (at least 32 bytes). */
  secret?: string;
  /** RS256 / ES256 / EdDSA: the issuer's key set, fetched (and refetched for a key id it does not know). */
  jwksUrl?: string;
  /** The same from a file, re-read when it changes (e.g. a Kubernetes cluster's keys, mounted). */
  jwksFile?: string;
  issuer?: string;
  audience?: string;
  /**
   * Roles for tokens that carry no factsync claims (a Kubernetes service-account
   * token): `subject=role:env[:agent-ids]`, comma separated; a subject ending
   * in `*` matches a prefix.
   */
  subjects?: string;
  /** Accept JWTs without `exp` (JWT_ALLOW_NO_EXP): by default a token that never expires is refused. */
  allowNoExp?: boolean;
}

interface SubjectGrant {
  subject: string;
  role: Role;
  env: string;
  agentIds?: string;
}

/** JWT_SUBJECTS: `system:serviceaccount:payments:*=agent:prod`, …. */
function parseSubjects(raw: string): SubjectGrant[] {
  return raw.split(',').map((e) => e.trim()).filter(Boolean).map((entry) => {
    const eq = entry.lastIndexOf('=');
    const [role, env, agentIds, ...rest] = (eq > 0 ? entry.slice(eq + 1) : '').split(':');
    const subject = eq > 0 ? entry.slice(0, eq) : '';
    if (!subject || !role || !env || rest.length > 0 || agentIds === '') {
      throw new ConfigError(`JWT_SUBJECTS entry "${entry.slice(0, 80)}" is invalid: write subject=role:env[:agent-ids], e.g. system:serviceaccount:payments:*=agent:prod`);
    }
    if (!(ROLES as readonly string[]).includes(role)) throw new ConfigError(`JWT_SUBJECTS entry for ${subject}: role "${role}" is unknown; use ${ROLES.join(', ')}`);
    if (env !== '*' && !envRe.test(env)) throw new ConfigError(`JWT_SUBJECTS entry for ${subject}: env "${env}" must be * or match ${ENV_PATTERN}`);
    return { subject, role: role as Role, env, ...(agentIds !== undefined && agentIds !== '*' ? { agentIds } : {}) };
  });
}

/** The claims factsync reads (docs/api.md, "Identity and transport"). */
export interface TokenClaims {
  role: Role;
  envs: string[];
  agent_ids?: string[];
  tenants?: string[];
}

const ASYMMETRIC = ['RS256', 'ES256', 'EdDSA'];
/** Longer is not a token anyone sends; parsing it would be work a client chose for us. */
const MAX_TOKEN_CHARS = 8192;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const FILE_CHECK_MS = 1000;
/**
 * Verified tokens are remembered this long (and never past their exp), so a
 * client sending the same token on every request pays for one verification,
 * not one per request; at most CACHE_MAX of them (invariant 10). Short, so a
 * key removed from a remote JWKS stops working within it.
 */
const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;
const envRe = new RegExp(ENV_PATTERN);
const agentIdRe = new RegExp(AGENT_ID_PATTERN.replace('$', '\\*?$'));

const refuse = (why: string): FactsyncError => new FactsyncError('unauthorized', `JWT refused: ${why}`);

/**
 * JWTs through `jose`: HS256 with JWT_SECRET, RS256/ES256/EdDSA with a JWKS
 * (URL or file). The algorithm is chosen by what is configured, never by the
 * token: an HS256 token is checked only against the secret, an asymmetric one
 * only against the key set, so a token signed with a public key as an HMAC
 * secret (algorithm confusion) or `alg: none` is refused. Every refusal
 * names its reason; none is a 500.
 */
export class JwtVerifier {
  private readonly secret: Uint8Array | undefined;
  private readonly remote: JWTVerifyGetKey | undefined;
  private local: { get: JWTVerifyGetKey; stamp: string; checkedAt: number } | undefined;
  private readonly subjects: SubjectGrant[];
  private readonly verified = new Map<string, { p: Principal; until: number }>();

  constructor(private readonly o: JwtOptions) {
    this.subjects = o.subjects ? parseSubjects(o.subjects) : [];
    if (o.secret !== undefined) {
      if (Buffer.byteLength(o.secret) < 32) throw new ConfigError('JWT_SECRET is too short: use at least 32 bytes (e.g. openssl rand -hex 32)');
      this.secret = new TextEncoder().encode(o.secret);
    }
    if (o.jwksUrl !== undefined) {
      let url: URL;
      try {
        url = new URL(o.jwksUrl);
      } catch {
        throw new ConfigError(`JWT_JWKS_URL=${JSON.stringify(o.jwksUrl)} is not a URL: use e.g. https://issuer.example/.well-known/jwks.json`);
      }
      // Cached; a key id it does not know is fetched again, at most every 30 s.
      this.remote = createRemoteJWKSet(url, { cooldownDuration: 30_000, cacheMaxAge: 600_000, timeoutDuration: 5_000 });
    }
    if (o.jwksFile !== undefined) this.loadFile(true);
  }

  get canMint(): boolean {
    return this.secret !== undefined;
  }

  /** Whether `token` has the shape of a JWT (three base64url parts); static tokens are looked up first. */
  looksLikeJwt(token: string): boolean {
    return token.length <= MAX_TOKEN_CHARS && JWT_SHAPE.test(token);
  }

  async verify(token: string): Promise<Principal> {
    const now = Date.now();
    if (this.o.jwksFile) this.loadFile(false); // a changed key set empties the cache
    // By digest: 10,000 tokens of up to 8 KiB would otherwise be 80 MiB of keys.
    const id = sha256(token).toString('base64');
    const hit = this.verified.get(id);
    if (hit && hit.until > now) return hit.p;
    const p = await this.verifyUncached(token);
    if (this.verified.size >= CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(id, { p, until: Math.min(now + CACHE_MS, p.expiresAtMs ?? Number.POSITIVE_INFINITY) });
    return p;
  }

  private async verifyUncached(token: string): Promise<Principal> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw refuse('malformed: its header is not base64url JSON');
    }
    const common = { issuer: this.o.issuer, audience: this.o.audience, clockTolerance: 5 };
    let payload: JWTPayload;
    try {
      if (alg === 'HS256' && this.secret) {
        payload = (await jwtVerify(token, this.secret, { ...common, algorithms: ['HS256'] })).payload;
      } else if (alg !== undefined && ASYMMETRIC.includes(alg) && (this.remote || this.o.jwksFile)) {
        payload = (await jwtVerify(token, this.keySet(), { ...common, algorithms: ASYMMETRIC })).payload;
      } else {
        const accepted = [...(this.secret ? ['HS256'] : []), ...(this.remote || this.o.jwksFile ? ASYMMETRIC : [])];
        throw refuse(`algorithm ${JSON.stringify(alg ?? null)} is not accepted here (accepted: ${accepted.join(', ')})`);
      }
    } catch (e) {
      throw describe(e, this.o);
    }
    // A stolen token that never expires is valid for ever: refuse it unless the operator chose otherwise.
    if (typeof payload.exp !== 'number' && !this.o.allowNoExp) throw refuse('it has no exp claim (it would never expire): issue tokens with exp, or set JWT_ALLOW_NO_EXP=true to accept such tokens');
    if (payload.role === undefined && payload.envs === undefined) return this.bySubject(payload, token);
    return principalOf(payload, token);
  }

  /** A signed HS256 token for these claims, valid `ttlSeconds`. */
  async mint(claims: TokenClaims, ttlSeconds: number): Promise<{ token: string; expires_at: string }> {
    if (!this.secret) throw new FactsyncError('not_found', 'this server mints tokens only with JWT_SECRET set');
    const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
    let jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt().setExpirationTime(exp)
      .setJti(randomBytes(12).toString('base64url')).setSubject(`${claims.role}:${claims.envs.join(',')}`);
    if (this.o.issuer) jwt = jwt.setIssuer(this.o.issuer);
    if (this.o.audience) jwt = jwt.setAudience(this.o.audience);
    return { token: await jwt.sign(this.secret), expires_at: new Date(exp * 1000).toISOString() };
  }

  /** A verified token without factsync claims: its role comes from JWT_SUBJECTS. */
  private bySubject(p: JWTPayload, token: string): Principal {
    const sub = typeof p.sub === 'string' ? p.sub : '';
    const g = this.subjects.find((x) => (x.subject.endsWith('*') ? sub.startsWith(x.subject.slice(0, -1)) : sub === x.subject));
    if (!g) throw refuse(`it has no factsync claims (role, envs) and its subject ${JSON.stringify(sub)} is not in JWT_SUBJECTS`);
    return {
      role: g.role, envs: g.env === '*' ? '*' : [g.env], tokenIndex: sha256(token).readUIntBE(0, 6),
      ...(g.agentIds ? { agentIds: [g.agentIds] } : {}),
      ...(typeof p.exp === 'number' ? { expiresAtMs: p.exp * 1000 } : {}),
      label: `jwt:${sub.slice(0, 80)}`,
    };
  }

  private keySet(): JWTVerifyGetKey {
    if (this.remote) return this.remote;
    this.loadFile(false);
    return this.local!.get;
  }

  private loadFile(atStart: boolean): void {
    const file = this.o.jwksFile!;
    const now = Date.now();
    if (!atStart && this.local && now - this.local.checkedAt < FILE_CHECK_MS) return;
    try {
      const st = statSync(file);
      const stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (this.local && stamp === this.local.stamp) {
        this.local.checkedAt = now;
        return;
      }
      const jwks = JSON.parse(readFileSync(file, 'utf8')) as JSONWebKeySet;
      if (!Array.isArray(jwks?.keys)) throw new Error('it has no "keys" array');
      this.local = { get: createLocalJWKSet(jwks), stamp, checkedAt: now };
      // Tokens verified with keys that may be gone now are verified again.
      this.verified?.clear();
    } catch (e) {
      if (atStart) throw new ConfigError(`JWT_JWKS_FILE=${file} is not a JSON Web Key Set (${(e as Error).message}): give a file {"keys": [...]}`);
      // A key file being rewritten: keep the keys it held until it reads whole again.
      if (this.local) this.local.checkedAt = now;
    }
  }
}

/** A jose error → the sentence a client gets. */
function describe(e: unknown, o: JwtOptions): FactsyncError {
  if (e instanceof FactsyncError) return e;
  if (e instanceof errors.JWTExpired) {
    const exp = typeof e.payload.exp === 'number' ? new Date(e.payload.exp * 1000).toISOString() : 'an earlier time';
    return refuse(`expired at ${exp}; get a fresh token`);
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === 'nbf' || e.claim === 'iat') return refuse(`not yet valid (${e.claim} is in the future): check the clocks`);
    if (e.claim === 'iss') return refuse(`wrong issuer ${JSON.stringify(e.payload.iss ?? null)}: this server accepts issuer ${JSON.stringify(o.issuer)} (JWT_ISSUER)`);
    if (e.claim === 'aud') return refuse(`wrong audience ${JSON.stringify(e.payload.aud ?? null)}: this server accepts audience ${JSON.stringify(o.audience)} (JWT_AUDIENCE)`);
    return refuse(`claim ${e.claim}: ${e.reason}`);
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) return refuse('bad signature: it was not signed with a key this server trusts');
  if (e instanceof errors.JWKSNoMatchingKey) return refuse('no key of the JWKS matches its key id (kid): was the key rotated out?');
  if (e instanceof errors.JOSEAlgNotAllowed) return refuse(`algorithm not accepted: ${e.message}`);
  if (e instanceof errors.JWKSTimeout || e instanceof errors.JWKSInvalid) return new FactsyncError('upstream_unavailable', `cannot verify JWTs: the key set (JWT_JWKS_URL) could not be read (${e.message})`);
  if (e instanceof errors.JOSEError) return refuse(`malformed: ${e.message}`);
  if (e instanceof Error && /fetch|ECONNREFUSED|ENOTFOUND/i.test(e.message)) return new FactsyncError('upstream_unavailable', `cannot verify JWTs: the key set (JWT_JWKS_URL) could not be fetched (${e.message})`);
  return refuse('malformed');
}

const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** The claims → who it is. A claim of the wrong shape is a refusal naming it. */
function principalOf(p: JWTPayload, token: string): Principal {
  const role = p.role;
  if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw refuse(`claim "role" must be one of ${ROLES.join(', ')}`);
  const envs = p.envs === '*' ? ['*'] : p.envs;
  if (!strings(envs) || envs.length === 0 || !envs.every((e) => e === '*' || envRe.test(e))) throw refuse('claim "envs" must be a list of env names, or ["*"] for every env');
  if (p.agent_ids !== undefined && (!strings(p.agent_ids) || !p.agent_ids.every((a) => a === '*' || agentIdRe.test(a)))) {
    throw refuse('claim "agent_ids" must be a list of agent ids (a trailing * matches a prefix)');
  }
  if (p.tenants !== undefined && (!strings(p.tenants) || p.tenants.some((t) => t.length === 0 || t.length > 512))) throw refuse('claim "tenants" must be a list of tenant keys');
  const agentIds = (p.agent_ids as string[] | undefined)?.filter((a) => a !== '*');
  return {
    role: role as Role,
    envs: envs.includes('*') ? '*' : envs,
    tokenIndex: sha256(token).readUIntBE(0, 6),
    ...(agentIds && agentIds.length > 0 && agentIds.length === (p.agent_ids as string[]).length ? { agentIds } : {}),
    ...(p.tenants !== undefined ? { tenants: p.tenants as string[] } : {}),
    ...(typeof p.exp === 'number' ? { expiresAtMs: p.exp * 1000 } : {}),
    label: `jwt:${typeof p.sub === 'string' ? p.sub.slice(0, 80) : role}`,
  };
}
