export { createServer, buildStore, type FactsyncServer, type ServerOptions } from './app.js';
export { loadServerConfig, type ServerConfig } from './config.js';
export { ConfigError } from '@factsync/shared';
export { runUntilSignal } from './lifecycle.js';
export { createMemoryStore } from './store/memory-store.js';
export { createRedisStore } from './store/redis-store.js';
export type { FactStore, EnvEvent, ControlEvent, AgentRecord } from './store/fact-store.js';
export type { BroadcasterHooks } from './broadcast/broadcaster.js';
export { Broadcaster } from './broadcast/broadcaster.js';
