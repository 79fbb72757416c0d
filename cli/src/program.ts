import { Command, CommanderError, Option } from 'commander';
import { FactsyncClientError } from '@factsync/sdk';
import { ENV_PATTERN } from '@factsync/shared';
import { ExitError, UsageError, createContext, type CliContext } from './context.js';
import { agents, envs, envsCreate, get, status } from './commands/inspect.js';
import { check, write } from './commands/write.js';
import { importFile } from './commands/import.js';
import { exportFacts } from './commands/export.js';
import { tail } from './commands/tail.js';
import { reconcile } from './commands/reconcile.js';
import { policyApply, policyExport } from './commands/policy.js';
import { tokenCreate } from './commands/token.js';
// Sources pull in the Postgres client: loaded when a source command runs, not at every start.
const sourceCommands = () => import('./commands/source.js');

const envRe = new RegExp(ENV_PATTERN);

/**
 * `npx factsync <command>`. Reads FACTSYNC_URL (a server), FACTSYNC_TOKEN
 * (else the dev token `npm start` keeps) and FACTSYNC_AGENT_URL (for check).
 * Exit status: 0 done, 1 the server or agent refused or failed, 2 a mistake
 * in the command or its input (the one line on stderr says which).
 */
export function buildProgram(): Command {
  const program = new Command('factsync')
    .description('Command-line client of a factsync server and its agents')
    .addOption(new Option('--env <env>', 'the env to address').default('default').env('FACTSYNC_ENV'))
    .option('--json', 'JSON output (the default when stdout is not a terminal)')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `
Environment:
  FACTSYNC_URL         the server (default http://127.0.0.1:7002)
  FACTSYNC_TOKEN       a server token (default: the dev token of npm start, .data/dev-token)
  FACTSYNC_AGENT_URL   the agent asked by check (default http://127.0.0.1:7766)
  FACTSYNC_AGENT_TOKEN the agent's AGENT_API_TOKEN, when it has one`);

  const ctx = (): CliContext => {
    const o = program.opts<{ env: string; json?: boolean }>();
    if (!envRe.test(o.env)) throw new UsageError(`--env "${o.env}" is not an env name: use 1-64 of A-Z a-z 0-9 _ -`);
    return createContext(o);
  };

  program.command('status').description('the server, its store, and the env\'s head and agents').action(() => status(ctx()));
  const envsCmd = program.command('envs').description('the envs this token may read (envs create NAME: make one)').action(() => envs(ctx()));
  envsCmd.command('create').argument('<name>', 'the env: 1-64 of A-Z a-z 0-9 _ -').description('create an env (admin token); nothing happens when it exists')
    .action((name: string) => {
      if (!envRe.test(name)) throw new UsageError(`"${name}" is not an env name: use 1-64 of A-Z a-z 0-9 _ -`);
      return envsCreate(ctx(), name);
    });
  program.command('agents').description('the env\'s agents: applied version, lag, connected').action(() => agents(ctx()));
  program.command('get').argument('<type>').argument('<key>').description('one fact as the server holds it').action((type: string, key: string) => get(ctx(), type, key));
  program.command('write').argument('<file>', 'a write body {"ops": [...]} in a file, or - for stdin').description('apply a write as one version')
    .option('--idempotency-key <key>', 'a retry with the same key applies nothing twice')
    .option('--wait-for <who>', 'wait for acks: all, a number of agents, or agent ids')
    .option('--timeout <seconds>', 'how long to wait for them (default 10 with --wait-for)')
    .action((file: string, o: { idempotencyKey?: string; waitFor?: string; timeout?: string }) => write(ctx(), file, o));
  program.command('check').argument('<user>').argument('<action>').argument('<resource>', 'a type (document) or an instance (document:1)')
    .description('ask the agent whether USER may ACTION RESOURCE; prints {"allow", "version"}')
    .option('--tenant <tenant>', 'the tenant to decide in')
    .option('--at-least <version>', 'decide only once the agent applied this version')
    .action((user: string, action: string, resource: string, o: { tenant?: string; atLeast?: string }) => check(ctx(), user, action, resource, o));
  program.command('import').argument('<file>', 'JSON lines of facts or ops, or CSV')
    .description('write a file\'s facts in order, in writes within the server\'s limits; resumable')
    .option('--format <format>', 'jsonl or csv (default: by the file\'s extension)')
    .option('--type <type>', 'CSV: the type of every record')
    .option('--key <column>', 'CSV: the column holding the key (optional for role_assignment, relationship, attribute)')
    .option('--map <pairs>', 'CSV: column=field pairs, dotted fields nest (default: every other column as a field)')
    .option('--chunk-ops <n>', 'facts per write (default 2000, at most the server\'s MAX_OPS_PER_WRITE)')
    .option('--restart', 'ignore the progress of an earlier run and import from the start')
    .action((file: string, o) => importFile(ctx(), file, o));
  program.command('export').description('the env\'s facts at one version, as JSON lines')
    .option('--type <type>', 'only this type').option('--tenant <tenant>', 'only facts of this tenant (with --type)')
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .action((o: { type?: string; tenant?: string; output?: string }) => exportFacts(ctx(), o));
  program.command('tail').description('follow the env\'s changes, one JSON line {version, id, ts, ops} each, in order')
    .option('--after <version>', 'start after this version (default: the head, i.e. new changes only)')
    .option('--types <types>', 'only ops of these types (comma list); changes without any are not printed')
    .option('--tenants <tenants>', 'only the share of these tenants (comma list): their facts and facts of no tenant')
    .option('--until-head', 'stop at the head seen at the start instead of following')
    .action((o: { after?: string; types?: string; tenants?: string; untilHead?: boolean }) => tail(ctx(), o));
  program.command('reconcile').argument('<file>', 'JSON lines of facts: every fact of the scope')
    .description('make the env\'s facts of a type (and tenant) equal to the file\'s: upsert what differs, delete what it lacks')
    .option('--type <type>', 'the type to reconcile (required)').option('--tenant <tenant>', 'only this tenant\'s facts of the type')
    .option('--dry-run', 'print the plan, write nothing')
    .action((file: string, o: { type?: string; tenant?: string; dryRun?: boolean }) => reconcile(ctx(), file, o));
  const policy = program.command('policy').description('the policy (resources, roles, resource roles, condition sets, rules) as a file');
  policy.command('apply').argument('<file>', 'YAML or JSON: type → key → value')
    .description('make the env\'s policy equal to the file in one version, printing the diff')
    .option('--dry-run', 'print the diff, write nothing')
    .action((file: string, o: { dryRun?: boolean }) => policyApply(ctx(), file, o));
  policy.command('export').description('the env\'s policy in the format policy apply reads')
    .option('-o, --output <file>', 'write to a file (JSON for .json)').option('--format <format>', 'yaml (default) or json')
    .action((o: { output?: string; format?: string }) => policyExport(ctx(), o));
  const source = program.command('source').description('sources: facts pulled from Postgres or HTTP, exactly once (docs/sources.md)');
  source.command('run').argument('<file>', 'a source config (YAML)').description('keep the env\'s owned facts equal to each source of the file, until stopped')
    .action(async (file: string) => (await sourceCommands()).sourceRun(ctx(), file));
  source.command('resync').argument('<file>').argument('<name>', 'the source to resync').description('make a source\'s owned facts equal to a fresh snapshot (a new slot), then exit')
    .action(async (file: string, name: string) => (await sourceCommands()).sourceResync(ctx(), file, name));
  source.command('status').argument('[file]', 'the config: adds each Postgres slot (confirmed position, retained WAL)')
    .description('each source: recorded position, version, how long ago (and its slot, given the config)')
    .action(async (file?: string) => (await sourceCommands()).sourceStatus(ctx(), file));
  const token = program.command('token').description('tokens');
  token.command('create').description('mint a JWT (needs JWT_SECRET on the server and an admin token)')
    .option('--role <role>', 'admin, writer, agent or reader').option('--envs <envs>', 'comma list, * = every env')
    .option('--agent-ids <ids>', 'the agent ids it may connect as').option('--tenants <tenants>', 'the tenants a scoped agent may ask for')
    .option('--ttl <seconds>', 'lifetime (default 3600)')
    .action((o) => tokenCreate(ctx(), o));
  return program;
}

/** Runs one command line; resolves with the exit status. Errors are one line on stderr. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram().exitOverride();
  // `factsync export | head`: the reader left, which is not an error of ours.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
  });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return 0;
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2; // commander printed it
    if (e instanceof UsageError) {
      process.stderr.write(`factsync: ${e.message}\n`);
      return 2;
    }
    if (e instanceof ExitError) {
      process.stderr.write(`factsync: ${e.message}\n`);
      return e.status;
    }
    if (e instanceof FactsyncClientError) {
      process.stderr.write(`factsync: ${e.message}${e.code !== 'network_error' && e.status ? ` (${e.code}, HTTP ${e.status})` : ''}\n`);
      return 1;
    }
    process.stderr.write(`factsync: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}
