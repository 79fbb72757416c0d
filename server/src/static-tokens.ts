import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError, ENV_PATTERN } from '@factsync/shared';
import { ROLES, type Role } from './roles.js';

/** One entry of AUTH_TOKENS: the token's digest (the token itself is never kept), its role and scope. */
export interface TokenGrant {
  digest: Buffer;
  role: Role;
  /** An env name, or '*' for every env. */
  env: string;
  /** Optional third part: the agent ids this token may connect as (exact, or a prefix ending in '*'). */
  agentIds?: string;
}

export const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();
const envRe = new RegExp(ENV_PATTERN);

/** `token=role:env,token=role:env` (commas or new lines; `#` starts a comment line in a file). `where` names the source in errors. */
export function parseTokens(raw: string, where = 'AUTH_TOKENS'): TokenGrant[] {
  const grants: TokenGrant[] = [];
  const entries = raw.split(/[,\n]/).map((s) => s.trim()).filter((s) => s && !s.startsWith('#'));
  for (const entry of entries) {
    const eq = entry.lastIndexOf('=');
    const token = eq > 0 ? entry.slice(0, eq) : '';
    const [role, env, agentIds, ...rest] = (eq > 0 ? entry.slice(eq + 1) : '').split(':');
    const shown = token ? `${token.slice(0, 3)}…` : '(empty)';
    if (!token || rest.length > 0 || !role || !env || agentIds === '') {
      throw new ConfigError(`${where} entry for token ${shown} is invalid: write token=role:env or token=agent:env:agent-id (a trailing * matches a prefix), e.g. s3cret=agent:prod`);
    }
    if (agentIds !== undefined && !/^[A-Za-z0-9_.@-]+\*?$|^\*$/.test(agentIds)) {
      throw new ConfigError(`${where} entry for token ${shown}: agent ids "${agentIds}" must be an agent id or a prefix ending in *`);
    }
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new ConfigError(`${where} entry for token ${shown}: role "${role}" is unknown; use ${ROLES.join(', ')}`);
    }
    if (env !== '*' && !envRe.test(env)) {
      throw new ConfigError(`${where} entry for token ${shown}: env "${env}" must be * or match ${ENV_PATTERN}`);
    }
    grants.push({ digest: sha256(token), role: role as Role, env, ...(agentIds !== undefined && agentIds !== '*' ? { agentIds } : {}) });
  }
  return grants;
}

/** How often a changed AUTH_TOKENS_FILE is looked for, at most (a stat, on a request). */
const FILE_CHECK_MS = 1000;

/**
 * The static tokens: AUTH_TOKENS, plus AUTH_TOKENS_FILE re-read when it
 * changes, so a token is added, rotated or revoked without a restart. A file
 * that becomes unreadable or invalid keeps the last good list and says so
 * once (a half-written file must not lock everyone out).
 */
export class StaticTokens {
  private fileGrants: TokenGrant[] = [];
  private seen = '';
  private checkedAt = 0;
  private broken = false;

  constructor(private readonly grants: readonly TokenGrant[], private readonly file: string | undefined, private readonly log?: Logger) {
    if (file) this.load(true);
  }

  /** The grant whose token this is, comparing digests of equal length with every grant (no early exit). */
  find(token: string): TokenGrant | undefined {
    this.maybeReload();
    const digest = sha256(token);
    let found: TokenGrant | undefined;
    for (const g of [...this.grants, ...this.fileGrants]) if (timingSafeEqual(g.digest, digest) && !found) found = g;
    return found;
  }

  private maybeReload(): void {
    if (!this.file) return;
    const now = Date.now();
    if (now - this.checkedAt < FILE_CHECK_MS) return;
    this.checkedAt = now;
    this.load(false);
  }

  private load(atStart: boolean): void {
    const file = this.file!;
    let stamp: string;
    try {
      const st = statSync(file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (e) {
      if (atStart) throw new ConfigError(`AUTH_TOKENS_FILE=${file} cannot be read (${(e as NodeJS.ErrnoException).code}): give the path of a file of token=role:env lines`);
      this.complain(`cannot be read (${(e as NodeJS.ErrnoException).code})`);
      return;
    }
    if (stamp === this.seen) return;
    try {
      this.fileGrants = parseTokens(readFileSync(file, 'utf8'), `AUTH_TOKENS_FILE ${file}`);
      this.seen = stamp;
      if (!atStart) this.log?.info({ file, tokens: this.fileGrants.length }, 'AUTH_TOKENS_FILE changed: tokens reloaded');
      this.broken = false;
    } catch (e) {
      if (atStart) throw e;
      this.seen = stamp;
      this.complain((e as Error).message);
    }
  }

  private complain(why: string): void {
    if (this.broken) return;
    this.broken = true;
    this.log?.error({ file: this.file, why }, 'AUTH_TOKENS_FILE is unusable; keeping the tokens it held before');
  }
}
