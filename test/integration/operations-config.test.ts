import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadServerConfig } from '@factsync/server';
import { loadAgentConfig } from '@factsync/pdp-agent';
import { ROOT } from '../src/procs.js';

/** Every variable a config loader reads, found through a recording proxy (required ones get a placeholder so it reads on). */
function namesRead(load: (env: Record<string, string | undefined>) => unknown): Set<string> {
  const seen = new Set<string>();
  const required: Record<string, string> = { AGENT_TOKEN: 'placeholder-token' };
  load(new Proxy({}, { get: (_t, k) => (typeof k === 'string' ? (seen.add(k), required[k]) : undefined) }));
  return seen;
}

/** The variables the Configuration table of docs/operations.md names in its first column. */
function documented(): Set<string> {
  const doc = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
  const table = doc.slice(doc.indexOf('## Configuration'), doc.indexOf('\n## ', doc.indexOf('## Configuration') + 5));
  const out = new Set<string>();
  for (const line of table.split('\n')) {
    if (!line.startsWith('| `')) continue;
    for (const m of (line.split('|')[1] ?? '').matchAll(/`([A-Z][A-Z0-9_]+)`/g)) out.add(m[1]!);
  }
  return out;
}

describe('docs/operations.md, Configuration', () => {
  it('documents every variable the server and the agent read, and none they do not', () => {
    const read = new Set([...namesRead(loadServerConfig), ...namesRead(loadAgentConfig)]);
    const doc = documented();
    expect(read.size).toBeGreaterThan(30);
    expect([...read].filter((v) => !doc.has(v)).sort(), 'read but not documented').toEqual([]);
    expect([...doc].filter((v) => !read.has(v)).sort(), 'documented but read by neither').toEqual([]);
  });
});
