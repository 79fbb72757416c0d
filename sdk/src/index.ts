export { createClient, FactsyncClient, type ClientOptions, type SyncOptions, type WriteResult, type Page } from './client.js';
export type { AgentStatus } from '@factsync/shared';
export { FactsyncClientError } from './errors.js';
