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
