import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  backoffDelayMs, decodeControlEvent, decodeDoorbell, encodeControlEvent, encodeDoorbell, formatWaitFor, parseClientMessage, type WaitFor, parseOps, parseTimeoutPolicy, parseWaitFor, parseWaitTimeout, factsDigest,
} from '@factsync/shared';
import { parseTokens, createAuthenticator, permitAgentId } from '../../server/src/auth.js';
import { loadServerConfig } from '@factsync/server';
import { loadAgentConfig } from '@factsync/pdp-agent';

describe('waiting headers', () => {
  it('parses wait_for forms and rejects the rest with the accepted forms', () => {
    expect(parseWaitFor('all', { kind: 'local' })).toEqual({ ok: true, value: { kind: 'all' } });
    expect(parseWaitFor(undefined, { kind: 'local' })).toEqual({ ok: true, value: { kind: 'local' } });
    expect(parseWaitFor('3', { kind: 'all' })).toEqual({ ok: true, value: { kind: 'count', n: 3 } });
    expect(parseWaitFor('a1, b2,a1', { kind: 'all' })).toEqual({ ok: true, value: { kind: 'ids', ids: ['a1', 'b2'] } });
    for (const bad of ['0', '', ' , ', 'a b', '-1']) {
      const r = parseWaitFor(bad, { kind: 'all' });
      expect(r.ok, bad).toBe(false);
      if (!r.ok) expect(r.error).toContain('accepted forms');
    }
  });

  it('formats every wait form so that it parses back to itself', () => {
    const forms: WaitFor[] = [{ kind: 'local' }, { kind: 'all' }, { kind: 'count', n: 3 }, { kind: 'ids', ids: ['a1', 'b-2'] }];
    for (const w of forms) {
      expect(parseWaitFor(formatWaitFor(w), { kind: 'all' })).toEqual({ ok: true, value: w });
    }
  });

  it('parses timeouts in seconds; non-numbers are errors', () => {
    expect(parseWaitTimeout('0', 10)).toEqual({ ok: true, value: { ms: 0 } });
    expect(parseWaitTimeout('1.5', 10)).toEqual({ ok: true, value: { ms: 1500 } });
    expect(parseWaitTimeout('-1', 10)).toEqual({ ok: true, value: { ms: null } });
    expect(parseWaitTimeout(undefined, 10)).toEqual({ ok: true, value: { ms: 10_000 } });
    for (const bad of ['abc', '1e3', 'NaN', '5s', '99999']) expect(parseWaitTimeout(bad, 10).ok, bad).toBe(false);
    expect(parseTimeoutPolicy('FAIL')).toEqual({ ok: true, value: 'fail' });
    expect(parseTimeoutPolicy('later').ok).toBe(false);
  });
});

describe('write validation', () => {
  it('accepts well-formed ops of well-known and custom types', () => {
    const r = parseOps([
      { op: 'upsert', type: 'user', key: 'a@b.c', value: { email: 'a@b.c', attributes: { x: 1 } } },
      { op: 'upsert', type: 'role_assignment', key: 'a@b.c/viewer/default', value: { user: 'a@b.c', role: 'viewer', tenant: 'default' } },
      { op: 'upsert', type: 'relationship', key: 'document:1#editor@user:1', value: { object: 'document:1', relation: 'editor', subject: 'user:1' } },
      { op: 'upsert', type: 'attribute', key: 'document:1$is_private', value: { entity: 'document:1', attribute: 'is_private', kind: 'boolean', value: true } },
      { op: 'upsert', type: 'anything_custom', key: 'k', value: { any: ['json'] } },
      { op: 'delete', type: 'user', key: 'x' },
    ]);
    expect(r.ok).toBe(true);
  });

  it('names the op and the field that is wrong', () => {
    const cases: [unknown, RegExp][] = [
      [{ op: 'upsert', type: 'user', key: 'k' }, /ops\[0\].*has no value/],
      [{ op: 'delete', type: 'user', key: 'k', value: {} }, /delete takes only type and key/],
      [{ op: 'upsert', type: 'user', key: 'k', value: { email: 5 } }, /ops\[0\] \(user "k"\): value\.email/],
      [{ op: 'upsert', type: 'role_assignment', key: 'wrong', value: { user: 'u', role: 'r', tenant: 't' } }, /must have key "u\/r\/t"/],
      [{ op: 'upsert', type: 'attribute', key: 'e$a', value: { entity: 'e', attribute: 'a', kind: 'integer', value: 1.5 } }, /not of kind integer/],
    ];
    for (const [op, re] of cases) {
      const r = parseOps([op as never]);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatch(re);
    }
  });
});

describe('websocket messages', () => {
  it('accepts hello and ack; rejects garbage with a reason', () => {
    expect(parseClientMessage('{"type":"hello","env":"e","agent_id":"a","applied":0}').ok).toBe(true);
    expect(parseClientMessage('{"type":"ack","version":3}').ok).toBe(true);
    const bad = ['', 'null', '{"type":"nope"}', '{"type":"ack","version":-1}', '{"type":"hello","env":"bad env","agent_id":"a","applied":0}', '[1]'];
    for (const b of bad) {
      const r = parseClientMessage(b);
      expect(r.ok, b).toBe(false);
    }
  });

  it('a frame that is not JSON says where it broke', () => {
    const r = parseClientMessage('{"type":"ack","version":}');
    expect(r).toEqual({ ok: false, error: { message: expect.stringMatching(/^frame is not valid JSON \(Unexpected token '\}', .*, at position 24 \(line 1, column 25\)\)$/) } });
  });

  it('property: never throws on arbitrary input', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (s) => {
      parseClientMessage(s);
      decodeDoorbell(s);
    }), { numRuns: 2000 });
  });

  it('change doorbells round-trip', () => {
    expect(decodeDoorbell(encodeDoorbell({ version: 7, epoch: 'ep_-1', change: '{"a":"b:c"}' }))).toEqual({ ok: true, value: { version: 7, epoch: 'ep_-1', change: '{"a":"b:c"}' } });
    expect(decodeDoorbell(encodeDoorbell({ version: 7, epoch: 'ep' }))).toEqual({ ok: true, value: { version: 7, epoch: 'ep' } });
    expect(decodeDoorbell(encodeDoorbell({ version: 9, epoch: 'ep', changes: ['{"a":1}', '{"b":2}'] }))).toEqual({ ok: true, value: { version: 9, epoch: 'ep', changes: ['{"a":1}', '{"b":2}'] } });
    for (const e of [{ type: 'join', agentId: 'a', session: 's', replica: 'r' }, { type: 'summary', replica: 'r', floor: 3, histogram: [[3, 2], [5, 1]], max: 5 }] as const) {
      expect(decodeControlEvent(encodeControlEvent(e as never))).toEqual({ ok: true, value: e });
    }
    expect(decodeControlEvent('{"t":"sum","r":"x"}').ok).toBe(false);
    expect(decodeDoorbell('c:7').ok).toBe(false);
  });
});

describe('auth and config', () => {
  it('parses tokens and authorizes by role and env', async () => {
    const auth = createAuthenticator(parseTokens('w=writer:prod, r=reader:*, a=agent:prod'));
    expect((await auth.authorize('Bearer w', 'prod', 'write')).role).toBe('writer');
    await expect(auth.authorize('Bearer w', 'dev', 'write')).rejects.toThrow(/not "dev"/);
    await expect(auth.authorize('Bearer r', 'dev', 'write')).rejects.toThrow(/reader token cannot write/);
    await expect(auth.authorize('Bearer w', 'prod', 'ack')).rejects.toThrow(/cannot connect as an acking agent/);
    await expect(auth.authorize('Bearer nope', 'prod', 'read')).rejects.toThrow(/unknown token/);
    await expect(auth.authorize(undefined, 'prod', 'read')).rejects.toThrow(/missing bearer token/);
    expect(() => parseTokens('x=boss:prod')).toThrow(/role "boss" is unknown/);
    expect(() => parseTokens('x=admin')).toThrow(/token=role:env/);
    expect(() => parseTokens('x=agent:prod:bad id')).toThrow(/prefix ending in \*/);
    const bound = createAuthenticator(parseTokens('eu=agent:prod:pdp-eu-*,one=agent:prod:pdp-1,any=agent:prod:*'));
    const p1 = await bound.authenticate('Bearer eu');
    const one = await bound.authenticate('Bearer one');
    const any = await bound.authenticate('Bearer any');
    expect(() => permitAgentId(p1, 'pdp-eu-7')).not.toThrow();
    expect(() => permitAgentId(p1, 'pdp-us-1')).toThrow(/only connect as agent pdp-eu-\*/);
    expect(() => permitAgentId(one, 'pdp-1')).not.toThrow();
    expect(() => permitAgentId(one, 'pdp-10')).toThrow(/not "pdp-10"/);
    expect(() => permitAgentId(any, 'whatever')).not.toThrow();
  });

  it('a bad setting is one clear line', () => {
    expect(() => loadServerConfig({ PORT: 'eighty' })).toThrow(/PORT="eighty" is invalid: expected an integer/);
    expect(() => loadServerConfig({ REDIS_URL: 'localhost:6379' })).toThrow(/REDIS_URL/);
    expect(() => loadAgentConfig({ SERVER_URL: 'ftp://x', AGENT_TOKEN: 't' })).toThrow(/use http:\/\/ or https:\/\//);
    expect(() => loadAgentConfig({ AGENT_ENV: 'no spaces', AGENT_TOKEN: 't' })).toThrow(/AGENT_ENV/);
    expect(() => loadAgentConfig({ AGENT_TOKEN: '  ' })).toThrow(/^AGENT_TOKEN is empty: set it to a token whose role is agent/);
    expect(() => loadAgentConfig({ AGENT_TOKEN: 't', LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
    expect(loadAgentConfig({ SERVER_URL: 'http://a:1, http://b:2', AGENT_TOKEN: 't' }).serverUrls.map((u) => u.host)).toEqual(['a:1', 'b:2']);
  });

  it('backoff stays within its bounds', () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const d = backoffDelayMs(attempt, { initialMs: 100, maxMs: 5000 });
      expect(d).toBeGreaterThanOrEqual(50);
      expect(d).toBeLessThanOrEqual(5000);
    }
  });

  it('digest is stable and order-independent', () => {
    expect(factsDigest([{ type: 'a', key: '1', value: { b: 1, a: 2 } }])).toBe(factsDigest([{ type: 'a', key: '1', value: { a: 2, b: 1 } }]));
  });
});
