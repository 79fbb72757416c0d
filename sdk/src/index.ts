export { createClient, FactsyncClient, type ClientOptions, type SyncOptions, type WriteResult, type Page, type AgentStatus } from './client.js';
export { FactsyncClientError } from './errors.js';
