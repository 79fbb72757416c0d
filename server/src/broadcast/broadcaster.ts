import type { Logger } from 'pino';
import type { EnvEvent, EventBus, FactLog } from '../store/fact-store.js';
import { EnvFeed, type FeedMember } from './env-feed.js';

export interface BroadcasterHooks {
  /** Test seam: return true to drop a pub/sub event before the feed sees it. */
  dropEvent?: (env: string, ev: EnvEvent) => boolean;
}

interface FeedEntry {
  feed: Promise<EnvFeed>;
  /**
   * The members live on the entry, not on the feed: a leave that empties the
   * entry closes it at once, and a join that awaited the opening checks that
   * its entry is still the env's before it trusts the feed.
   */
  members: Set<FeedMember>;
  /** The feed once it opened, for synchronous readers (metrics). */
  opened?: EnvFeed;
  unsubscribe?: () => Promise<void>;
  closed: boolean;
}

/**
 * Owns this replica's feeds: one per env with at least one connected socket,
 * subscribed to that env's events while it has members.
 */
export class Broadcaster {
  private readonly feeds = new Map<string, FeedEntry>();
  private readonly healTimer: NodeJS.Timeout;
  gapsRepaired = 0;
  /** Called when a feed finds the store's history rewritten under it (invariant 9). */
  onFork: (env: string) => void = () => undefined;

  constructor(
    private readonly store: FactLog & EventBus,
    private readonly log: Logger,
    private readonly opts: { healIntervalMs: number; pageSize: number; frameBytes?: number; idleAfterMs?: number; idleHealMs?: number },
    private readonly hooks: BroadcasterHooks = {},
  ) {
    this.healTimer = setInterval(() => this.healDue(), opts.healIntervalMs);
    this.healTimer.unref();
    store.onEventsReset(() => this.healAll());
  }

  async join(env: string, member: FeedMember): Promise<EnvFeed> {
    for (;;) {
      let entry = this.feeds.get(env);
      if (!entry) {
        const created: FeedEntry = { feed: Promise.resolve(undefined as never), members: new Set(), closed: false };
        created.feed = this.open(env, created);
        created.feed.catch(() => {
          if (this.feeds.get(env) === created) this.feeds.delete(env);
        });
        this.feeds.set(env, created);
        entry = created;
      }
      entry.members.add(member);
      const feed = await entry.feed;
      // A leave may have emptied and closed this entry while we waited: join the env's current one instead.
      if (!entry.closed && this.feeds.get(env) === entry) return feed;
      entry.members.delete(member);
    }
  }

  private async open(env: string, entry: FeedEntry): Promise<EnvFeed> {
    // Subscribe first, then read the head: a version committed in between is both
    // in the head and in a doorbell, and the feed drops the duplicate.
    let feed: EnvFeed | undefined;
    const buffered: EnvEvent[] = [];
    const unsubscribe = await this.store.subscribe(env, (ev) => {
      if (this.hooks.dropEvent?.(env, ev)) return;
      if (feed) feed.onEvent(ev);
      else buffered.push(ev);
    });
    try {
      const head = await this.store.head(env);
      feed = new EnvFeed(env, head, entry.members, this.store, this.opts.pageSize, this.log,
        (n) => (this.gapsRepaired += n), () => this.onFork(env), this.opts.frameBytes);
      for (const ev of buffered) feed.onEvent(ev);
      entry.unsubscribe = unsubscribe;
      entry.opened = feed;
      if (entry.closed) {
        feed.close();
        await unsubscribe();
      }
      return feed;
    } catch (e) {
      await unsubscribe();
      throw e;
    }
  }

  leave(env: string, member: FeedMember): void {
    const entry = this.feeds.get(env);
    if (!entry || !entry.members.delete(member) || entry.members.size > 0) return;
    this.feeds.delete(env);
    entry.closed = true;
    // An entry still opening closes itself when it opens (see open).
    if (entry.opened) {
      entry.opened.close();
      void entry.unsubscribe?.();
    }
  }

  /** The periodic heal: active feeds every tick, idle ones rarely (EnvFeed.healDue). */
  private healDue(): void {
    const now = Date.now();
    for (const [env, entry] of this.feeds) {
      if (entry.opened?.healDue(now, this.opts.healIntervalMs, this.opts.idleAfterMs, this.opts.idleHealMs)) {
        entry.opened.heal().catch((e: Error) => this.log.debug({ env, err: e.message }, 'heal failed'));
      }
    }
  }

  /** Every feed at once: after the subscription was lost, any doorbell may have been missed. */
  healAll(): void {
    for (const [env, entry] of this.feeds) {
      entry.opened?.heal().catch((e: Error) => this.log.debug({ env, err: e.message }, 'heal failed'));
    }
  }

  *feedHeads(): Iterable<{ env: string; known: number }> {
    for (const [env, entry] of this.feeds) if (entry.opened) yield { env, known: entry.opened.known };
  }

  async close(): Promise<void> {
    clearInterval(this.healTimer);
    const entries = [...this.feeds.values()];
    this.feeds.clear();
    await Promise.allSettled(entries.map(async (e) => {
      e.closed = true;
      (await e.feed).close();
      await e.unsubscribe?.();
    }));
  }
}
