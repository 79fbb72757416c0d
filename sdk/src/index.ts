export { createClient, FactsyncClient, atLeastToken, type AtLeast, type ClientOptions, type SyncOptions, type WriteResult, type Page,
  type CheckOptions, type Decision, type CheckUser, type CheckResource, type UserPermissions } from './client.js';
export type { AgentStatus } from '@factsync/shared';
export { FactsyncClientError } from './errors.js';
export { createServerClient, FactsyncServerClient, type ServerClientOptions, type TokenClaims, type ServerWriteOptions, type ProducerNumber, type ScopePageQuery } from './server-client.js';
export { type ChangesOptions, type FollowedChange } from './changes.js';
export { scanScope, replayBetween, canonicalJson, inScope, type Scope, type ScanBounds } from './scope.js';
