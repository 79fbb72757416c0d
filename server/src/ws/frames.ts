import type { Snapshot } from '../store/fact-store.js';

/** One stored fact as JSON, assembled from its stored value text: never parsed and re-serialised. */
const factJson = (f: Snapshot['facts'][number]): string =>
  `{"type":${JSON.stringify(f.type)},"key":${JSON.stringify(f.key)},"value":${f.valueJson}}`;

/**
 * The snapshot as frames within `maxBytes` each (a single larger fact alone),
 * built one at a time as the socket takes them: a million facts are never one
 * string. Every frame carries the version; the last one says `last: true`.
 */
export function* snapshotFrames(s: Snapshot, maxBytes: number): Generator<string> {
  const head = `{"type":"snapshot","version":${s.version},"epoch":${JSON.stringify(s.epoch)},"id":${JSON.stringify(s.id)},"facts":[`;
  let parts: string[] = [];
  let bytes = head.length;
  for (let i = 0; i < s.facts.length; i++) {
    const json = factJson(s.facts[i]!);
    if (parts.length > 0 && bytes + json.length + 20 > maxBytes) {
      yield `${head}${parts.join(',')}],"last":false}`;
      parts = [];
      bytes = head.length;
    }
    parts.push(json);
    bytes += json.length + 1;
  }
  yield `${head}${parts.join(',')}],"last":true}`;
}

export function factsJson(s: Snapshot): string {
  return s.facts.map(factJson).join(',');
}
