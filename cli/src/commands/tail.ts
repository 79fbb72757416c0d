import { FactsyncClientError } from '@factsync/sdk';
import { parseTenantsList, parseTypesList } from '@factsync/shared';
import { onStopSignal } from '@factsync/shared/lifecycle';
import { UsageError, writeOut, type CliContext } from '../context.js';

/**
 * `tail`: the env's changes as JSON lines `{version, id, ts, ops}`, in order,
 * from `--after` + 1 (default: from now), following live until interrupted.
 * After a disconnect or a server restart it resumes from the last version
 * printed: no gap, no repeat (FactsyncServerClient.changes).
 */
export async function tail(c: CliContext, o: { after?: string; types?: string; tenants?: string; untilHead?: boolean }): Promise<void> {
  const after = o.after === undefined ? undefined : Number(o.after);
  if (after !== undefined && !(Number.isInteger(after) && after >= 0)) throw new UsageError(`--after ${o.after} is not a version (a whole number ≥ 0)`);
  const parsed = o.types === undefined ? undefined : parseTypesList(o.types);
  if (parsed && !parsed.ok) throw new UsageError(`--types: ${parsed.error}`);
  const types = parsed?.value;
  const scoped = o.tenants === undefined ? undefined : parseTenantsList(o.tenants);
  if (scoped && !scoped.ok) throw new UsageError(`--tenants: ${scoped.error}`);
  const tenants = scoped?.value;
  const stop = new AbortController();
  // Ctrl-C under npx comes twice (the terminal's and the one npx forwards): the same keypress.
  onStopSignal(() => stop.abort(), () => process.exit(130));
  try {
    const changes = c.server.changes({
      after, untilHead: o.untilHead, signal: stop.signal, types, tenants,
      onState: (state, detail) => c.err.write(`factsync tail: ${state === 'live' ? '' : 'disconnected: '}${detail}\n`),
    });
    for await (const change of changes) {
      // Filtered by the server: every version comes, and one with nothing of these types is not printed.
      if ((types || tenants) && change.ops.length === 0) continue;
      await writeOut(c.out, `${JSON.stringify({ version: change.version, id: change.id, ts: change.ts, ops: change.ops })}\n`);
    }
  } catch (e) {
    if (e instanceof FactsyncClientError && e.code === 'log_truncated') {
      throw new FactsyncClientError('log_truncated', e.status, `${e.message.replace(/; load a snapshot instead$/, '')}: run factsync export for the state, then factsync tail --after the version it names`);
    }
    throw e;
  }
}
