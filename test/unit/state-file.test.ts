import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadState, saveState } from '../../pdp-agent/src/state-file.js';

const facts = (n: number) => Array.from({ length: n }, (_, i) => ({ type: 'doc', key: `k${i}\nwith newline`, value: { i, s: 'x'.repeat(20) } }));

describe('agent state file', () => {
  it('round-trips, and saving yields to the event loop between chunks instead of blocking it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-state-'));
    const state = { env: 'e', version: 42, epoch: 'ep', id: 'abc', facts: facts(100_000) };
    let ticks = 0;
    let saving = true;
    const tick = () => {
      ticks++;
      if (saving) setImmediate(tick);
    };
    setImmediate(tick);
    await saveState(dir, state);
    saving = false;
    // 100,000 facts in chunks of 2,000: the loop ran between them (one blocking stringify would allow none).
    expect(ticks).toBeGreaterThanOrEqual(40);
    expect(await loadState(dir, 'e')).toEqual({ kind: 'ok', state: { ...state, tenants: null } });
    expect(await loadState(dir, 'other')).toMatchObject({ kind: 'invalid', reason: expect.stringContaining('env "e"') });
  });

  it('a scoped agent\'s file serves only an agent of the same tenants (AGENT_TENANTS changed: start over)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-state-'));
    await saveState(dir, { env: 'e', version: 3, epoch: 'x', id: 'i', tenants: ['globex', 'acme'], facts: [] });
    expect(await loadState(dir, 'e', ['acme', 'globex'])).toMatchObject({ kind: 'ok', state: { version: 3, tenants: ['globex', 'acme'] } });
    expect(await loadState(dir, 'e', ['acme'])).toMatchObject({ kind: 'invalid', reason: expect.stringContaining('tenants acme,globex') });
    expect(await loadState(dir, 'e')).toMatchObject({ kind: 'invalid', reason: expect.stringContaining('the whole env') });
  });

  it('a torn, edited or garbage file is never served; a file of the previous format still loads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-state-'));
    const file = join(dir, 'factsync-state.json');
    await saveState(dir, { env: 'e', version: 3, epoch: 'ep', id: 'x', facts: facts(10) });
    const text = readFileSync(file, 'utf8');
    for (const damaged of [text.slice(0, Math.floor(text.length / 2)), text.replace('"doc"', '"dox"'), 'garbage', text.slice(0, text.lastIndexOf('\n') + 1)]) {
      writeFileSync(file, damaged);
      expect((await loadState(dir, 'e')).kind).toBe('invalid');
    }
    const body = JSON.stringify({ env: 'e', version: 7, epoch: 'ep', facts: facts(3) });
    writeFileSync(file, `${createHash('sha256').update(body).digest('hex')}\n${body}`);
    expect(await loadState(dir, 'e')).toMatchObject({ kind: 'ok', state: { version: 7, facts: facts(3) } });
  });
});
