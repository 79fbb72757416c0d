/**
 * `tsx bench/profile-top.ts <file.cpuprofile> [n]`: the functions with the most
 * self time in a V8 CPU profile, to find what dominates a hot path.
 */
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }
const [file, nArg] = process.argv.slice(2);
const prof = JSON.parse(readFileSync(file!, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const self = new Map<number, number>();
prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
const byFn = new Map<string, number>();
let total = 0;
for (const node of prof.nodes) {
  const t = self.get(node.id) ?? 0;
  total += t;
  const f = node.callFrame;
  const where = f.url ? `${f.url.replace(/^.*\/node_modules\//, 'npm:').replace(/^.*\/work\/main\//, '')}:${f.lineNumber + 1}` : '';
  const key = `${f.functionName || '(anonymous)'} ${where}`;
  byFn.set(key, (byFn.get(key) ?? 0) + t);
}
const rows = [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(nArg ?? 25));
for (const [k, t] of rows) process.stdout.write(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(0).padStart(6)} ms  ${k}\n`);
