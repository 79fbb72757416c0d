import { FactsyncError } from '@factsync/shared';
import type { EnvAdmin, FactLog } from './store/fact-store.js';

export interface EnvDirectoryOptions {
  /** ENVS_AUTO_CREATE: every name exists, and a first write creates its env (today's single-env setups, tests). */
  autoCreate: boolean;
  /** ENVS: created at start, and again by a write or hello should the store have lost them. */
  declared: readonly string[];
}

/** Most names this replica remembers as existing; past it, it asks the store each time (correct, one read dearer). */
const MAX_KNOWN = 10_000;

/**
 * Which envs exist. An env is created explicitly (POST /v1/envs/:env, ENVS at
 * start), so a typo in a URL or an agent's AGENT_ENV is a 404 that names the
 * envs there are, never a new env in which every write is instantly "synced"
 * for want of agents. An env exists when the store holds its epoch; once seen,
 * this replica remembers it (envs are never deleted, and a store that lost
 * everything gets its epoch back from the next write, as before).
 */
export class EnvDirectory {
  private readonly known = new Set<string>();
  private readonly declared: ReadonlySet<string>;

  constructor(private readonly store: Pick<FactLog, 'head' | 'ensureEpoch'> & EnvAdmin, private readonly opts: EnvDirectoryOptions) {
    this.declared = new Set(opts.declared);
  }

  /** Creates the ENVS of the config (start-up). */
  async createDeclared(): Promise<void> {
    for (const env of this.opts.declared) await this.create(env);
  }

  /** Creates `env` if it does not exist yet; true when this call created it. */
  async create(env: string): Promise<boolean> {
    const before = await this.store.head(env);
    if (before.epoch === null) await this.store.ensureEpoch(env);
    this.remember(env);
    return before.epoch === null;
  }

  /**
   * Throws `not_found` unless `env` exists. `visible` limits the names the
   * message lists to what the asker may read ('*' = any).
   */
  async require(env: string, visible: '*' | readonly string[]): Promise<void> {
    if (this.opts.autoCreate || this.known.has(env)) return;
    if ((await this.store.head(env)).epoch !== null) {
      this.remember(env);
      return;
    }
    // A declared env the store lost (a Redis that restarted empty) comes back as it did before envs were explicit.
    if (this.declared.has(env)) {
      await this.create(env);
      return;
    }
    const names = visible === '*' ? await this.store.envs(11) : visible.filter((e) => e !== env).slice(0, 11);
    const listed = names.length === 0 ? 'there are none yet' : `there are: ${names.slice(0, 10).map((e) => `"${e}"`).join(', ')}${names.length > 10 ? ', …' : ''}`;
    throw new FactsyncError('not_found',
      `env "${env}" does not exist (${listed}); create it with \`npx factsync envs create ${env}\` or POST /v1/envs/${env} (admin), or list it in ENVS at server start`,
      { env });
  }

  private remember(env: string): void {
    if (this.known.size < MAX_KNOWN) this.known.add(env);
  }
}
