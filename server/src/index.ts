export { createServer, buildStore, type FactsyncServer, type ServerOptions } from './app.js';
export { loadServerConfig, type ServerConfig } from './config.js';
export { ConfigError } from '@factsync/shared';
export { runUntilSignal } from '@factsync/shared/lifecycle';
export { createMemoryStore } from './store/memory-store.js';
export { createRedisStore } from './store/redis-store.js';
export { createEmbeddedStore } from './store/embedded-store.js';
export { DataDirError, DATA_FILE } from './store/sqlite-journal.js';
export type {
  FactStore, FactLog, SessionRegistry, EventBus, UsageLedger, EnvAdmin, EnvEvent, ControlEvent, AgentRecord, WriteInput, WriteOutcome, WriteResult,
} from './store/fact-store.js';
export { GroupCommit } from './store/group-commit.js';
export type { BroadcasterHooks } from './broadcast/broadcaster.js';
export { Broadcaster } from './broadcast/broadcaster.js';
