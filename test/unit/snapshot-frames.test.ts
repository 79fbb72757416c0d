import { describe, expect, it } from 'vitest';
import { SnapshotAssembly, type SnapshotMessage } from '@factsync/shared';
import { SnapshotFrameBuilder } from '../../server/src/ws/frames.js';

/** The frames of a scanned snapshot, encoded into one reused buffer. */
describe('snapshot frame builder', () => {
  it('frames within the budget (one oversized item alone), valid UTF-8 JSON with any characters, facts then changes, last frame marked', () => {
    const b = new SnapshotFrameBuilder({ version: 7, epoch: 'ep', id: 'id7' }, 2048);
    const frames: Buffer[] = [];
    // Each frame is valid only until the next item is added: copy it, as a socket would have taken it.
    const take = (f: Buffer | undefined) => f && frames.push(Buffer.from(f));
    const facts = Array.from({ length: 200 }, (_, i) => ({ type: 'user', key: `ü-${i}-😀`, value: { name: `Zoë ${'ß'.repeat(i % 7)}`, i } }));
    facts.splice(100, 0, { type: 'blob', key: 'big', value: { pad: 'é'.repeat(5000) } as never });
    for (const f of facts) take(b.fact(JSON.stringify(f)));
    const changes = Array.from({ length: 5 }, (_, i) => ({ version: 8 + i, id: `c${i}`, ts: 't', ops: [{ op: 'delete', type: 'user', key: `ü-${i}-😀` }] }));
    for (const c of changes) take(b.change(JSON.stringify(c)));
    frames.push(Buffer.from(b.end(195)));

    const assembly = new SnapshotAssembly();
    let whole;
    for (const [i, f] of frames.entries()) {
      const m = JSON.parse(f.toString('utf8')) as SnapshotMessage;
      expect(m).toMatchObject({ type: 'snapshot', version: 7, epoch: 'ep', id: 'id7', last: i === frames.length - 1 });
      const items = m.facts.length + (m.changes?.length ?? 0);
      if (items > 1) expect(f.length).toBeLessThanOrEqual(2048 + 1024); // the budget counts characters; bytes may run a little over
      whole = assembly.add(m);
    }
    expect(frames.length).toBeGreaterThan(5);
    expect(frames.some((f) => f.length > 10_000)).toBe(true); // the big fact, alone
    expect(whole).toMatchObject({ version: 7, at: 12, count: 195 });
    expect(whole!.facts).toEqual(facts);
    expect(whole!.replay).toEqual(changes);
  });
});
