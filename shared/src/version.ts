import { Type } from '@sinclair/typebox';

/**
 * Versions are positive safe integers; version 0 means "nothing applied".
 * Change-log (Redis Stream) ids are derived from them so that "changes after V"
 * is a plain range read.
 */
export const streamIdOf = (version: number): string => `${version}-0`;

export function versionOfStreamId(id: string): number {
  const dash = id.indexOf('-');
  return Number(dash < 0 ? id : id.slice(0, dash));
}

/**
 * Consistency tokens: versions belong to an epoch (invariant 5), so "at least
 * version V" is only meaningful together with the epoch V was written in. A
 * write answers `{version, epoch}`; `?at_least=` takes `V.EPOCH` (or a bare
 * `V`, meaning V of the epoch the agent last heard from the server).
 */
export interface AtLeast {
  version: number;
  /** Absent for a bare V. */
  epoch?: string;
}

export const AT_LEAST_PATTERN = '^[0-9]{1,16}(\\.[A-Za-z0-9_-]{1,64})?$';
export const AT_LEAST_DESCRIPTION = 'a consistency token V.EPOCH as a write answers it (or a bare version V, of the epoch this agent last heard)';

export const consistencyToken = (version: number, epoch: string): string => `${version}.${epoch}`;

export function parseAtLeast(text: string): AtLeast | undefined {
  if (!new RegExp(AT_LEAST_PATTERN).test(text)) return undefined;
  const dot = text.indexOf('.');
  const version = Number(dot < 0 ? text : text.slice(0, dot));
  if (!Number.isSafeInteger(version)) return undefined;
  return dot < 0 ? { version } : { version, epoch: text.slice(dot + 1) };
}

/** `?at_least=` on every agent route that reads: one schema, so every route takes the same tokens. */
export const AtLeastQuery = Type.Object({ at_least: Type.Optional(Type.String({ pattern: AT_LEAST_PATTERN, description: AT_LEAST_DESCRIPTION })) });
