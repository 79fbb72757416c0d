export { createAgent, type PdpAgent, type AgentStatus, type AgentOptions } from './agent.js';
export { loadAgentConfig, ConfigError, type AgentConfig } from './config.js';
export { Applier, type OfferResult } from './applier.js';
export { LocalStore } from './local-store.js';
