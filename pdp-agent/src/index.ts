export { createAgent, type PdpAgent, type AgentOptions } from './agent.js';
export type { AgentStatus } from '@factsync/shared';
export { loadAgentConfig, ConfigError, type AgentConfig } from './config.js';
export { Applier, type OfferResult } from './applier.js';
export { LocalStore } from './local-store.js';
