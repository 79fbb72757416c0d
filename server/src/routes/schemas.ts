import { Type } from '@sinclair/typebox';
import { EnvName, SyncStatus } from '@factsync/shared';

/** Route-level schemas shared by several route files; fact and protocol schemas live in shared/. */
export const EnvParams = Type.Object({ env: EnvName });

export const ErrorBody = Type.Object(
  { error: Type.String(), message: Type.String() },
  { additionalProperties: true, description: 'every error: a stable code and a sentence for humans' },
);

export const WriteResponse = Type.Object({ version: Type.Integer({ minimum: 1 }), sync: Type.Optional(SyncStatus) });

export const WAIT_HEADERS = {
  'x-wait-for': Type.Optional(Type.String({ description: '"all", an integer n, or a comma list of agent ids' })),
  'x-wait-timeout': Type.Optional(Type.String({ description: 'seconds: 0 = now, >0 = up to, <0 = until synced' })),
  'x-timeout-policy': Type.Optional(Type.String({ description: '"ignore" (default) or "fail" (424 on timeout)' })),
};
