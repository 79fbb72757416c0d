import type { Latency } from './lib/stats.js';

/** A bar chart of P1 latency percentiles, factsync vs the Socket.IO baseline, as standalone SVG. */
export function renderChart(doc: { factsync: Latency; baseline: Latency; params: { agents: number }; machine: { cpu: string; cpus: number } }): string {
  const keys = ['p50', 'p90', 'p99', 'max'] as const;
  const max = Math.max(...keys.flatMap((k) => [doc.factsync[k], doc.baseline[k]]), 1);
  const W = 640, H = 320, left = 60, bottom = 270, top = 50, groupW = (W - left - 20) / keys.length, barW = groupW / 3;
  const y = (v: number) => bottom - ((bottom - top) * v) / max;
  const bars = keys.map((k, i) => {
    const x = left + i * groupW + barW / 2;
    const f = doc.factsync[k], b = doc.baseline[k];
    return `<rect x="${x}" y="${y(f)}" width="${barW}" height="${bottom - y(f)}" fill="#3451b2"/>
  <text x="${x + barW / 2}" y="${y(f) - 4}" font-size="11" text-anchor="middle">${f}</text>
  <rect x="${x + barW}" y="${y(b)}" width="${barW}" height="${bottom - y(b)}" fill="#c47a1a"/>
  <text x="${x + barW * 1.5}" y="${y(b) - 4}" font-size="11" text-anchor="middle">${b}</text>
  <text x="${x + barW}" y="${bottom + 16}" font-size="12" text-anchor="middle">${k}</text>`;
  }).join('\n  ');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif">
  <rect width="${W}" height="${H}" fill="#fff"/>
  <text x="${left}" y="22" font-size="14" font-weight="600">P1 fan-out latency (ms), ${doc.params.agents} agents on 2 replicas</text>
  <text x="${left}" y="38" font-size="11" fill="#666">${doc.machine.cpus} × ${doc.machine.cpu}</text>
  <line x1="${left}" y1="${bottom}" x2="${W - 20}" y2="${bottom}" stroke="#999"/>
  ${bars}
  <rect x="${W - 230}" y="${H - 22}" width="10" height="10" fill="#3451b2"/><text x="${W - 215}" y="${H - 13}" font-size="11">factsync (wait_for=all)</text>
  <rect x="${W - 100}" y="${H - 22}" width="10" height="10" fill="#c47a1a"/><text x="${W - 85}" y="${H - 13}" font-size="11">Socket.IO</text>
</svg>
`;
}
