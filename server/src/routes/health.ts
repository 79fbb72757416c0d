import type { TypedApp } from '@factsync/shared/http-app';
import { Type } from '@sinclair/typebox';
import { FactsyncError } from '@factsync/shared';
import type { FactStore } from '../store/fact-store.js';

/** Open routes: liveness says the process runs; readiness says the store answers. */
export function healthRoutes(app: TypedApp, store: FactStore, isClosing: () => boolean): void {
  const Status = Type.Object({ status: Type.String() });
  app.get('/healthz', { schema: { summary: 'Liveness', response: { 200: Status } } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { summary: 'Readiness: the store answers' } }, async () => {
    if (isClosing()) throw new FactsyncError('shutting_down', 'this replica is shutting down');
    await store.ping();
    return { status: 'ready', store: store.kind };
  });
}
