import type { EnvHead, RawFact, Snapshot } from '../store/fact-store.js';

/** One stored fact as JSON, assembled from its stored value text: never parsed and re-serialised. */
export const factJson = (f: RawFact): string =>
  `{"type":${JSON.stringify(f.type)},"key":${JSON.stringify(f.key)},"value":${f.valueJson}}`;

/**
 * Builds the frames of one snapshot within `maxBytes` each (a single larger
 * item alone): first the facts, then the changes to replay over them (a
 * scanned snapshot, see FactStore.scanState). Every frame carries the base
 * version, epoch and chain id; all but the last say `last: false`.
 *
 * Frames are encoded straight into one buffer that is reused: a frame handed
 * out is valid until the next item is added, so send it and wait for the
 * socket to take it first. A snapshot of a million facts then allocates no
 * frame-sized string or buffer per frame, which V8 would only reclaim lazily
 * (tens of MiB of garbage in flight).
 */
export class SnapshotFrameBuilder {
  private readonly head: string;
  private readonly parts: string[] = [];
  private chars: number;
  private kind: 'facts' | 'changes' = 'facts';
  private buf: Buffer;

  constructor(base: Pick<EnvHead, 'version' | 'epoch' | 'id'>, private readonly maxBytes: number) {
    this.head = `{"type":"snapshot","version":${base.version},"epoch":${JSON.stringify(base.epoch)},"id":${JSON.stringify(base.id)},"facts":[`;
    this.chars = this.head.length;
    this.buf = Buffer.allocUnsafe(Math.min(maxBytes, 64 * 1024 * 1024) + 1024);
  }

  /** Adds a fact's JSON; returns a full frame to send first when it would not fit. */
  fact(json: string): Buffer | undefined {
    return this.add('facts', json);
  }

  /** Adds a change to replay (stored JSON text); the facts are complete once the first one is added. */
  change(json: string): Buffer | undefined {
    return this.add('changes', json);
  }

  /** The last frame (`last: true`), with whatever is left and the number of facts the snapshot leaves. */
  end(count: number): Buffer {
    return this.frame(true, count);
  }

  private add(kind: 'facts' | 'changes', json: string): Buffer | undefined {
    let out: Buffer | undefined;
    if (this.parts.length > 0 && (kind !== this.kind || this.chars + json.length + 40 > this.maxBytes)) out = this.frame(false);
    this.kind = kind;
    this.parts.push(json);
    this.chars += json.length + 1;
    return out;
  }

  private frame(last: boolean, count?: number): Buffer {
    const tail = count === undefined ? `],"last":${last}}` : `],"last":${last},"count":${count}}`;
    // UTF-8 takes at most 3 bytes per UTF-16 unit; only then is the exact size worth counting.
    if ((this.chars + 40) * 3 > this.buf.length) {
      const exact = Buffer.byteLength(this.head) + this.parts.reduce((n, p) => n + Buffer.byteLength(p) + 1, 0) + 40;
      if (exact > this.buf.length) this.buf = Buffer.allocUnsafe(exact); // an item larger than a frame: it travels alone
    }
    let at = this.buf.write(this.head, 0);
    if (this.kind === 'changes') at += this.buf.write('],"changes":[', at);
    for (let i = 0; i < this.parts.length; i++) {
      if (i > 0) this.buf[at++] = 0x2c; // ,
      at += this.buf.write(this.parts[i]!, at);
    }
    at += this.buf.write(tail, at);
    this.parts.length = 0;
    this.chars = this.head.length;
    return this.buf.subarray(0, at);
  }
}

/** A snapshot read at once, as frames built one at a time as the socket takes them (see SnapshotFrameBuilder). */
export function* snapshotFrames(s: Snapshot, maxBytes: number): Generator<Buffer> {
  const b = new SnapshotFrameBuilder(s, maxBytes);
  for (const f of s.facts) {
    const full = b.fact(factJson(f));
    if (full) yield full;
  }
  yield b.end(s.facts.length);
}

export function factsJson(s: Snapshot): string {
  return s.facts.map(factJson).join(',');
}
