import type { EnvHead, RawFact, Snapshot } from '../store/fact-store.js';

/** One stored fact as JSON, assembled from its stored value text: never parsed and re-serialised. */
export const factJson = (f: RawFact): string =>
  `{"type":${JSON.stringify(f.type)},"key":${JSON.stringify(f.key)},"value":${f.valueJson}}`;

/**
 * Builds the frames of one snapshot within `maxBytes` each (a single larger
 * item alone): first the facts, then the changes to replay over them (a
 * scanned snapshot, see FactStore.scanState). Every frame carries the base
 * version, epoch and chain id; all but the last say `last: false`. A million
 * facts are never one string: each frame is handed out as soon as it is full.
 */
export class SnapshotFrameBuilder {
  private readonly head: string;
  private parts: string[] = [];
  private bytes: number;
  private kind: 'facts' | 'changes' = 'facts';

  constructor(base: Pick<EnvHead, 'version' | 'epoch' | 'id'>, private readonly maxBytes: number) {
    this.head = `{"type":"snapshot","version":${base.version},"epoch":${JSON.stringify(base.epoch)},"id":${JSON.stringify(base.id)},"facts":[`;
    this.bytes = this.head.length;
  }

  /** Adds a fact's JSON; returns a full frame to send first when it would not fit. */
  fact(json: string): string | undefined {
    return this.add('facts', json);
  }

  /** Adds a change to replay (stored JSON text); the facts are complete once the first one is added. */
  change(json: string): string | undefined {
    return this.add('changes', json);
  }

  /** The last frame (`last: true`), with whatever is left. */
  end(): string {
    return this.frame(true);
  }

  private add(kind: 'facts' | 'changes', json: string): string | undefined {
    let out: string | undefined;
    if (this.parts.length > 0 && (kind !== this.kind || this.bytes + json.length + 40 > this.maxBytes)) out = this.frame(false);
    this.kind = kind;
    this.parts.push(json);
    this.bytes += json.length + 1;
    return out;
  }

  private frame(last: boolean): string {
    const body = this.parts.join(',');
    const f = this.kind === 'facts'
      ? `${this.head}${body}],"last":${last}}`
      : `${this.head}],"changes":[${body}],"last":${last}}`;
    this.parts = [];
    this.bytes = this.head.length;
    return f;
  }
}

/** A snapshot read at once, as frames built one at a time as the socket takes them. */
export function* snapshotFrames(s: Snapshot, maxBytes: number): Generator<string> {
  const b = new SnapshotFrameBuilder(s, maxBytes);
  for (const f of s.facts) {
    const full = b.fact(factJson(f));
    if (full) yield full;
  }
  yield b.end();
}

export function factsJson(s: Snapshot): string {
  return s.facts.map(factJson).join(',');
}
