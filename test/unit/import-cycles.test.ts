import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from '../src/procs.js';

/**
 * No source module imports itself through others: the layout shows the
 * architecture only if dependencies point one way (type-only imports count
 * too: they tie the modules' meanings together all the same).
 */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'node_modules' ? [] : sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

function graph(): Map<string, string[]> {
  const files = ['shared', 'server', 'pdp-agent', 'sdk', 'cli'].flatMap((w) => sources(join(ROOT, w, 'src')));
  const g = new Map<string, string[]>();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const deps = [...text.matchAll(/(?:import|export)[^'"]*?from\s+'(\.[^']+)'/g)].map((m) => resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts')));
    g.set(f, deps.filter((d) => d !== f));
  }
  return g;
}

function cycles(g: Map<string, string[]>): string[][] {
  const out: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string) => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      if (state.get(d) === 'open') out.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of g.keys()) if (!state.has(n)) visit(n);
  return out;
}

describe('module graph', () => {
  it('has no import cycles', () => {
    const g = graph();
    expect(g.size).toBeGreaterThan(50);
    expect(cycles(g).map((c) => c.map((f) => relative(ROOT, f)).join(' → '))).toEqual([]);
  });
});
