import type { Snapshot } from '../store/fact-store.js';

/** Snapshot frames are assembled from stored JSON text, never parsed and re-serialised. */
export function snapshotFrame(s: Snapshot): string {
  return `{"type":"snapshot","version":${s.version},"epoch":${JSON.stringify(s.epoch)},"id":${JSON.stringify(s.id)},"facts":[${factsJson(s)}]}`;
}

export function factsJson(s: Snapshot): string {
  return s.facts.map((f) => `{"type":${JSON.stringify(f.type)},"key":${JSON.stringify(f.key)},"value":${f.valueJson}}`).join(',');
}
