import type { CliContext } from '../context.js';
import { printJson, writeOut } from '../context.js';

/** `status`: the server, its store and the env's head and agents at a glance. */
export async function status(c: CliContext): Promise<void> {
  const [limits, head, agents] = await Promise.all([c.server.limits(), c.server.head(), c.server.agents()]);
  const connected = agents.filter((a) => a.connected);
  const synced = connected.filter((a) => a.applied >= head.version).length;
  const s = {
    server: c.server.opts.url, store: limits.store, env: c.server.env, head: head.version, epoch: head.epoch,
    agents: { connected: connected.length, synced, known: agents.length },
  };
  if (c.json) return printJson(c, s);
  await writeOut(c.out, [
    `server   ${s.server} (${s.store} store)`,
    `env      ${s.env} at version ${s.head}${s.epoch ? ` (epoch ${s.epoch})` : ' (empty)'}`,
    `agents   ${s.agents.connected} connected, ${s.agents.synced} at the head, ${s.agents.known} known`,
    '',
  ].join('\n'));
}

/** `envs`: the envs the token may read. */
export async function envs(c: CliContext): Promise<void> {
  const list = await c.server.envs();
  if (c.json) return printJson(c, list);
  await writeOut(c.out, list.length === 0 ? 'no env yet: create one with `npx factsync envs create NAME`\n' : `${list.join('\n')}\n`);
}

/** `envs create NAME`: an admin creates an env (nothing happens when it exists). */
export async function envsCreate(c: CliContext, name: string): Promise<void> {
  const r = await c.server.withEnv(name).createEnv();
  if (c.json) return printJson(c, r);
  await writeOut(c.out, r.created ? `env "${name}" created\n` : `env "${name}" already exists\n`);
}

/** `agents`: the env's agents, what they applied and whether they are connected. */
export async function agents(c: CliContext): Promise<void> {
  const [list, head] = await Promise.all([c.server.agents(), c.server.head()]);
  if (c.json) return printJson(c, list);
  if (list.length === 0) return writeOut(c.out, `no agent has connected to env "${c.server.env}"\n`);
  const w = Math.max(5, ...list.map((a) => a.id.length));
  const rows = list.map((a) => `${a.id.padEnd(w)}  ${String(a.applied).padStart(8)}  ${a.applied >= head.version ? 'synced ' : `-${head.version - a.applied}`.padEnd(7)}  ${a.connected ? 'connected   ' : 'disconnected'}  ${a.last_seen ?? ''}`);
  await writeOut(c.out, `${'agent'.padEnd(w)}  ${'applied'.padStart(8)}  ${'lag'.padEnd(7)}  ${'state'.padEnd(12)}  last seen\n${rows.join('\n')}\n`);
}

/** `get TYPE KEY`: one fact as the server holds it. */
export async function get(c: CliContext, type: string, key: string): Promise<void> {
  const f = await c.server.fact(type, key);
  if (c.json) return printJson(c, f);
  await writeOut(c.out, `${JSON.stringify({ type: f.type, key: f.key, value: f.value }, null, 2)}\n(at version ${f.version})\n`);
}
