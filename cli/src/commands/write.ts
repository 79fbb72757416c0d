import { readFile } from 'node:fs/promises';
import { AT_LEAST_DESCRIPTION, describeJsonError, parseAtLeast, parseOps, type WireOp } from '@factsync/shared';
import { UsageError, printJson, writeOut, type CliContext } from '../context.js';
import { readAll } from '../inputs.js';
import { FactsyncClientError } from '@factsync/sdk';

/** `write FILE|-`: a write body `{ops: [...]}` as one version. */
export async function write(c: CliContext, file: string, o: { idempotencyKey?: string; waitFor?: string; timeout?: string }): Promise<void> {
  const text = file === '-' ? await readAll(process.stdin) : await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file === '-' ? 'stdin' : file} is not JSON (${describeJsonError(text, (e as Error).message)})`);
  }
  const ops = (body as { ops?: unknown } | null)?.ops;
  if (!Array.isArray(ops) || ops.length === 0) throw new UsageError(`${file === '-' ? 'stdin' : file} must be a write body: {"ops": [{"op": "upsert", "type": …, "key": …, "value": {…}}, …]}`);
  const parsed = parseOps(ops as WireOp[]);
  if (!parsed.ok) throw new UsageError(parsed.error);
  const timeout = o.timeout === undefined ? undefined : Number(o.timeout);
  if (timeout !== undefined && !Number.isFinite(timeout)) throw new UsageError(`--timeout ${o.timeout} is not a number of seconds`);
  const r = await c.server.write(parsed.value, {
    idempotencyKey: o.idempotencyKey,
    sync: o.waitFor !== undefined || timeout !== undefined ? { waitFor: o.waitFor as never, timeout: timeout ?? 10 } : undefined,
  });
  // On stderr whatever the output format: stdout stays the answer a script parses.
  for (const w of r.warnings ?? []) await writeOut(c.err, `warning: ${w}\n`);
  if (c.json) return printJson(c, r);
  await writeOut(c.out, `written as version ${r.version}${r.sync ? (r.sync.synced ? `, applied by ${r.sync.acked.join(', ') || 'every agent awaited'}` : `, not yet applied by ${r.sync.pending.join(', ')}`) : ''}\n`);
}

/** `check USER ACTION RESOURCE`: asks the agent (FACTSYNC_AGENT_URL). */
export async function check(c: CliContext, user: string, action: string, resource: string, o: { tenant?: string; atLeast?: string }): Promise<void> {
  const atLeast = o.atLeast;
  if (atLeast !== undefined && !parseAtLeast(atLeast)) throw new UsageError(`--at-least ${atLeast} is not ${AT_LEAST_DESCRIPTION}, e.g. 12.Xy3_kq0aBcDe or 12`);
  const [type, key] = splitResource(resource);
  const d = await c.agent().decide(user, action, { type, ...(key !== undefined ? { key } : {}), ...(o.tenant ? { tenant: o.tenant } : {}) }, atLeast !== undefined ? { atLeast, timeout: 10 } : {})
    .catch((e: unknown) => {
      // The agent names its own setting; the CLI's is what the reader must set.
      if (e instanceof FactsyncClientError && e.code === 'unauthorized') {
        throw new FactsyncClientError('unauthorized', 401, process.env.FACTSYNC_AGENT_TOKEN
          ? 'the agent refused FACTSYNC_AGENT_TOKEN: set it to the agent\'s AGENT_API_TOKEN'
          : 'the agent requires a token (it has AGENT_API_TOKEN set): set FACTSYNC_AGENT_TOKEN to it');
      }
      throw e;
    });
  // The contract's line, whatever stdout is: scripts parse it, people read it.
  await printJson(c, { allow: d.allow, version: d.version });
}

function splitResource(r: string): [string, string | undefined] {
  const i = r.indexOf(':');
  return i < 0 ? [r, undefined] : [r.slice(0, i), r.slice(i + 1)];
}
