export { createClient, FactsyncClient, type ClientOptions, type SyncOptions, type WriteResult, type Page,
  type CheckOptions, type Decision, type CheckUser, type CheckResource, type UserPermissions } from './client.js';
export type { AgentStatus } from '@factsync/shared';
export { FactsyncClientError } from './errors.js';
