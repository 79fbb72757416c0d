/**
 * What a 404 or a wrong method says: the routes an app serves, and for a path
 * none of them matches, the nearest one (by path segments: a parameter
 * matches anything, a segment one letter off or a singular/plural counts as
 * near), so `PUT /v1/facts/user/bob` answers "did you mean PUT
 * /v1/facts/users/:key?".
 */
export interface RouteHint { methods: string[]; url: string }

const segs = (path: string) => path.split('/').filter(Boolean);
const matches = (pattern: string[], path: string[]) =>
  pattern.length === path.length && pattern.every((p, i) => p.startsWith(':') || p === path[i]);

/** Edit distance of two short strings (route segments). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

export class RouteTable {
  private readonly routes = new Map<string, Set<string>>();

  add(method: string, url: string): void {
    if (method === 'HEAD' || url.includes('*')) return;
    let m = this.routes.get(url);
    if (!m) this.routes.set(url, (m = new Set()));
    m.add(method);
  }

  /** The methods a path is served with (a 405 lists them in Allow), or none. */
  methodsFor(path: string): string[] {
    const p = segs(path);
    const out = new Set<string>();
    for (const [url, methods] of this.routes) if (matches(segs(url), p)) for (const m of methods) out.add(m);
    return [...out].sort();
  }

  /** The route nearest to `path` (same number of segments, a few letters off in all), preferring `method`; with `only`, served with it. */
  nearest(method: string, path: string, only = false): RouteHint | undefined {
    const p = segs(path);
    let best: { url: string; methods: string[]; cost: number } | undefined;
    for (const [url, methods] of this.routes) {
      const r = segs(url);
      if (r.length !== p.length) continue;
      let cost = 0;
      for (let i = 0; i < r.length && cost < 100; i++) {
        if (r[i]!.startsWith(':') || r[i] === p[i]) continue;
        const d = distance(r[i]!, p[i]!);
        cost += d <= Math.max(1, Math.floor(r[i]!.length / 4)) ? d : 100;
      }
      if (cost >= 100 || cost > 3) continue;
      if (!methods.has(method)) {
        if (only) continue;
        cost += 0.5;
      }
      if (!best || cost < best.cost) best = { url, methods: [...methods].sort(), cost };
    }
    return best && { url: best.url, methods: best.methods };
  }
}
