import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { nanoid } from 'nanoid';
import { createServerClient } from '@factsync/sdk';
import { GENESIS_ID, followsChain, type Change, type Op } from '@factsync/shared';
import { ADMIN, AGENT, READER, TOKENS, newEnv } from '../src/inproc.js';
import { scratch, spawnServer, type Proc } from '../src/procs.js';
import { client, upsert } from '../src/http.js';
import { cli, jsonLines } from '../src/cli.js';
import { waitUntil } from '../src/wait.js';

/**
 * Subscribers with `types` (hello, `GET /changes?types=`, the SDK's
 * `changes({types})`, `tail --types`) on a real server on Redis: every
 * version comes, with only the ops of those types, each linked by `prev` to
 * the version before, so the subscriber still sees a history that does not
 * continue (invariant 9 on a share).
 */
const { track, cleanup } = scratch('factsync-typed-');
let server: Proc;
beforeAll(async () => {
  server = track(await spawnServer({ REDIS_URL: inject('redisUrl'), KEY_PREFIX: `t${nanoid(6).replace(/[^A-Za-z0-9]/g, 'x')}`, AUTH_TOKENS: TOKENS }));
});
afterAll(cleanup);

/** Version v writes a user, a tenant and a role assignment (v % 3 decides which, so some versions have no user). */
const opsOf = (v: number): Op[] => [
  [upsert('user', `u${v}`, { email: `u${v}@x.io` })],
  [upsert('tenant', `t${v}`, {})],
  [upsert('role_assignment', `u${v}/viewer/t${v}`, { user: `u${v}`, role: 'viewer', tenant: `t${v}` }), upsert('user', `w${v}`, {})],
][v % 3] as Op[];
const writeVersions = async (env: string, from: number, to: number) => {
  for (let v = from; v <= to; v++) expect((await client(server.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: opsOf(v) })).body.version).toBe(v);
};
const whole = async (env: string): Promise<Change[]> => (await client(server.url, READER).get(`/v1/envs/${env}/changes?after=0`)).body.changes;

/**
 * Each change is the whole one's share: same version, id and ts, only `types`' ops, `prev` = the id
 * before; a run of versions with none of them comes as one change `from`..`version`, linked to the
 * id before `from`. Together they cover every version after `after`, in order. Returns how many runs.
 */
function expectShares(got: Change[], all: Change[], types: string[], after = 0): number {
  const share = (w: Change) => w.ops.filter((o) => types.includes(o.type));
  let next = after + 1;
  let runs = 0;
  for (const c of got) {
    const from = c.from ?? c.version;
    expect(from, JSON.stringify(c)).toBe(next);
    const w = all[c.version - 1]!;
    expect({ id: c.id, ts: c.ts, ops: c.ops }).toEqual({ id: w.id, ts: w.ts, ops: share(w) });
    expect(c.prev).toBe(from === 1 ? GENESIS_ID : all[from - 2]!.id);
    if (c.from !== undefined) {
      runs++;
      expect(c.from).toBeLessThan(c.version);
      for (let v = c.from; v <= c.version; v++) expect(share(all[v - 1]!)).toEqual([]);
    }
    next = c.version + 1;
  }
  expect(next - 1).toBe(all.length);
  return runs;
}
const lastVersion = (cs: Change[]) => cs.at(-1)?.version ?? 0;

function subscriber(token: string, hello: Record<string, unknown>) {
  const frames: { type: string; changes?: Change[]; error?: string }[] = [];
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${token}` } });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', agent_id: `sub-${nanoid(6)}`, ack: false, ...hello })));
  const changes = () => frames.filter((f) => f.type === 'changes').flatMap((f) => f.changes!);
  return { ws, frames, changes, closed };
}

describe('subscriptions with types', () => {
  it('a websocket subscriber gets every version with only its types\' ops, linked by prev, from the log and then live', async () => {
    const env = newEnv();
    await writeVersions(env, 1, 9);
    const sub = subscriber(READER, { env, applied: 0, types: ['user', 'tenant', 'user'] });
    try {
      await waitUntil(() => sub.changes().length === 9, 'nine versions from the log');
      // No snapshot follows for a share, and welcome says so.
      expect(sub.frames.find((f) => f.type === 'welcome')).toMatchObject({ snapshot: false });
      expect(sub.frames.some((f) => f.type === 'snapshot')).toBe(false);
      await writeVersions(env, 10, 15);
      await waitUntil(() => sub.changes().length === 15, 'six more, live');
      const all = await whole(env);
      expectShares(sub.changes(), all, ['user', 'tenant']);
      // Versions with nothing of these types still came: the role assignment's share is its user op alone.
      expect(sub.changes().find((c) => c.version === 2)!.ops.map((o) => o.type)).toEqual(['user']);
      // The whole changes are not shares: they carry no prev, and their chain id is checked as before.
      expect(all.every((c, i) => c.prev === undefined && (i === 0 || followsChain(all[i - 1]!.id, c)))).toBe(true);

      // Resuming from a version with its id (as the SDK does) continues the links from there.
      const again = subscriber(READER, { env, applied: 11, applied_id: all[10]!.id, epoch: (await client(server.url, READER).get(`/v1/envs/${env}/head`)).body.epoch, types: ['tenant'] });
      try {
        await waitUntil(() => lastVersion(again.changes()) === 15, 'versions 12-15');
        // 12 alone, 13 (a tenant), then 14 and 15 (nothing for this share) as one change.
        expect(again.changes().map((c) => [c.from ?? c.version, c.version])).toEqual([[12, 12], [13, 13], [14, 15]]);
        expect(expectShares(again.changes(), all, ['tenant'], 11)).toBe(1);
      } finally {
        again.ws.close();
      }
    } finally {
      sub.ws.close();
    }
  });

  it('GET /changes?types= pages the share, the first linked to version `after`; bad types are a 400 that names them', async () => {
    const env = newEnv();
    await writeVersions(env, 1, 7);
    const all = await whole(env);
    const page = await client(server.url, READER).get(`/v1/envs/${env}/changes?after=3&types=role_assignment`);
    expect(page.status).toBe(200);
    expect(page.body.head).toBe(7);
    // 4 and 6-7 hold nothing of role_assignment: the run 6-7 is one change.
    expect(expectShares(page.body.changes, all, ['role_assignment'], 3)).toBe(1);
    expect((await client(server.url, READER).get(`/v1/envs/${env}/changes?after=0&limit=3&types=tenant`)).body.changes.map((c: Change) => [c.from, c.version, c.prev]))
      .toEqual([[undefined, 1, GENESIS_ID], [2, 3, all[0]!.id]]);
    const bad = await client(server.url, READER).get(`/v1/envs/${env}/changes?after=0&types=User`);
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/types/);
  });

  it('a typed subscription continues from the log only: past a trimmed log it is a 410 / close 4410 that says what to do', async () => {
    const trimmed = track(await spawnServer({ AUTH_TOKENS: TOKENS, LOG_RETENTION: '5' }));
    const env = newEnv();
    for (let v = 1; v <= 12; v++) await client(trimmed.url, ADMIN).post(`/v1/envs/${env}/facts`, { ops: opsOf(v) });
    const page = await client(trimmed.url, READER).get(`/v1/envs/${env}/changes?after=3&types=user`);
    expect(page.status).toBe(410);
    expect(page.body.message).toMatch(/no longer holds version 3 \(head is 12\)/);
    const ws = new WebSocket(`${trimmed.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${READER}` } });
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', env, agent_id: 'typed-late', applied: 0, ack: false, types: ['user'] })));
    const c = await closed;
    expect(c.code).toBe(4410);
    expect(c.reason).toMatch(/log no longer holds version 1/);
  });

  it('an acking agent cannot ask for types: it applies every fact of its env', async () => {
    const env = newEnv();
    const sub = subscriber(AGENT, { env, applied: 0, ack: true, types: ['user'] });
    const c = await sub.closed;
    expect(c.code).toBe(4400);
    expect(c.reason).toMatch(/types is for subscribers/);
  });

  it('the SDK\'s changes({types}) and tail --types follow the share', async () => {
    const env = newEnv();
    await writeVersions(env, 1, 6);
    const all = await whole(env);
    const sdk = createServerClient({ url: server.url, token: READER, env });
    const got: Change[] = [];
    for await (const c of sdk.changes({ after: 0, untilHead: true, types: ['tenant'] })) got.push(c);
    expect(expectShares(got, all, ['tenant'])).toBe(2); // 2-3 and 5-6

    const out = await cli(['tail', '--after', '0', '--until-head', '--types', 'tenant'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER, FACTSYNC_ENV: env });
    expect(out.code, out.err).toBe(0);
    // Only versions with a tenant op are printed (1 and 4), as the whole changes' tenant ops.
    expect(jsonLines<Change>(out.out).map((l) => [l.version, l.ops.map((o) => o.key)])).toEqual([[1, ['t1']], [4, ['t4']]]);
    // The share of a tenant: its facts (t5's role assignment; not t1's or t4's tenant) and those of no tenant (users).
    const scoped = await cli(['tail', '--after', '0', '--until-head', '--tenants', 't5'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER, FACTSYNC_ENV: env });
    expect(scoped.code, scoped.err).toBe(0);
    expect(jsonLines<Change>(scoped.out).map((l) => [l.version, l.ops.map((o) => o.key)])).toEqual([[2, ['w2']], [3, ['u3']], [5, ['u5/viewer/t5', 'w5']], [6, ['u6']]]);
    const badTypes = await cli(['tail', '--types', 'User'], { FACTSYNC_URL: server.url, FACTSYNC_TOKEN: READER, FACTSYNC_ENV: env });
    expect(badTypes.code).toBe(2);
    expect(badTypes.err).toMatch(/--types: "User" is not a fact type/);
  });
});
