export { createAgent, type PdpAgent, type AgentOptions } from './agent.js';
export type { AgentStatus } from '@factsync/shared';
export { loadAgentConfig, ConfigError, type AgentConfig } from './config.js';
export { Applier, type OfferResult } from './applier.js';
export { LocalStore } from './local-store.js';
export { Decider } from './decide/decider.js';
export { PolicyIndex, type FactObserver } from './decide/policy-index.js';
export { Evaluator, MAX_DERIVATION_NODES, type Decision } from './decide/evaluator.js';
export { UsageTracker } from './usage-tracker.js';
