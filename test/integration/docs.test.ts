import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { newEnv, startAgent, startServer } from '../src/inproc.js';
import { ROOT } from '../src/procs.js';

/** docs/api.md is the project's own API reference: it must name every route the server and the agent serve. */
describe('docs/api.md', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
  });

  it('lists every route of the server and of the agent', async () => {
    const server = await startServer();
    closers.push(() => server.close());
    const agent = await startAgent(server.url, { env: { AGENT_ENV: newEnv() } });
    closers.push(() => agent.close());
    const doc = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');
    // The OpenAPI document of each app lists what it serves (`/docs` itself aside).
    const routesOf = (spec: { paths?: Record<string, Record<string, unknown>> }): [string, string][] =>
      Object.entries(spec.paths ?? {}).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => [m.toUpperCase(), path.replace(/\{(\w+)\}/g, ':$1')] as [string, string]));
    const served = [
      ...routesOf(server.app.swagger() as never),
      ...routesOf(agent.api.app.swagger() as never),
    ];
    expect(served.length).toBeGreaterThan(20);
    const undocumented = served.filter(([method, path]) => !documents(doc, method, path)).map(([m, p]) => `${m} ${p}`);
    expect(undocumented).toEqual([]);
  });
});

/**
 * A table row documents a route when its first cell names the path (as
 * `` `GET /path` `` or `` `GET /path?query` ``) and the method, e.g.
 * "`PUT /v1/facts/users/:key` · `DELETE …`" documents both methods of that path.
 */
function documents(doc: string, method: string, path: string): boolean {
  return doc.split('\n').some((line) => {
    if (!line.startsWith('|')) return false;
    const cell = line.split('|')[1] ?? '';
    return (cell.includes(` ${path}\``) || cell.includes(` ${path}?`)) && cell.includes(method);
  });
}
