import type { Logger } from 'pino';
import type { EnvEvent, FactStore } from '../store/fact-store.js';
import { EnvFeed, type FeedMember } from './env-feed.js';

export interface BroadcasterHooks {
  /** Test seam: return true to drop a pub/sub event before the feed sees it. */
  dropEvent?: (env: string, ev: EnvEvent) => boolean;
}

interface FeedEntry {
  feed: Promise<EnvFeed>;
  /** The feed once it opened, for synchronous readers (metrics). */
  opened?: EnvFeed;
  unsubscribe?: () => Promise<void>;
}

/**
 * Owns this replica's feeds: one per env with at least one connected socket,
 * subscribed to that env's events while it has members.
 */
export class Broadcaster {
  private readonly feeds = new Map<string, FeedEntry>();
  private readonly healTimer: NodeJS.Timeout;
  gapsRepaired = 0;

  constructor(
    private readonly store: FactStore,
    private readonly log: Logger,
    private readonly opts: { healIntervalMs: number; pageSize: number },
    private readonly hooks: BroadcasterHooks = {},
  ) {
    this.healTimer = setInterval(() => this.healAll(), opts.healIntervalMs);
    this.healTimer.unref();
    store.onEventsReset(() => this.healAll());
  }

  async join(env: string, member: FeedMember): Promise<EnvFeed> {
    let entry = this.feeds.get(env);
    if (!entry) {
      const created: FeedEntry = { feed: this.open(env, () => created) };
      entry = created;
      this.feeds.set(env, entry);
      entry.feed.catch(() => this.feeds.delete(env));
    }
    const feed = await entry.feed;
    feed.members.add(member);
    return feed;
  }

  private async open(env: string, self: () => FeedEntry): Promise<EnvFeed> {
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
      feed = new EnvFeed(env, head, this.store, this.opts.pageSize, this.log, (n) => (this.gapsRepaired += n));
      for (const ev of buffered) feed.onEvent(ev);
      self().unsubscribe = unsubscribe;
      self().opened = feed;
      return feed;
    } catch (e) {
      await unsubscribe();
      throw e;
    }
  }

  leave(env: string, member: FeedMember): void {
    const entry = this.feeds.get(env);
    if (!entry) return;
    void entry.feed.then(
      async (feed) => {
        feed.members.delete(member);
        if (feed.members.size > 0 || this.feeds.get(env) !== entry) return;
        this.feeds.delete(env);
        feed.close();
        await entry.unsubscribe?.();
      },
      () => undefined,
    );
  }

  healAll(): void {
    for (const [env, entry] of this.feeds) {
      void entry.feed.then((f) => f.heal()).catch((e: Error) => this.log.debug({ env, err: e.message }, 'heal failed'));
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
      (await e.feed).close();
      await e.unsubscribe?.();
    }));
  }
}
