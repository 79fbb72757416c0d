import { describe, expect, it } from 'vitest';
import { normalizeCheck, parseOps, type Op } from '@factsync/shared';
import { Decider, LocalStore } from '@factsync/pdp-agent';
import { CedarOracle } from '../src/cedar-oracle.js';
import { randomModel, rng } from '../src/policy-model.js';

/**
 * Our evaluator against Cedar (`@cedar-policy/cedar-wasm`) on random models:
 * both must give the same answer to every check. The model is applied in
 * several versions and then partly deleted, so the incremental indexes are
 * exercised on removals as well as inserts. A seed that ever disagreed stays in
 * REGRESSIONS.
 */
const REGRESSIONS: number[] = [];
const MODELS = Number(process.env.CEDAR_MODELS ?? 60);
const CHECKS_PER_MODEL = 60;
const BASE_SEED = Number(process.env.CEDAR_SEED ?? 20261126);

function decide(seed: number, kinds: Map<string, number>): { disagreements: string[]; checks: number; allowed: number } {
  const { ops, checks } = randomModel(seed, CHECKS_PER_MODEL);
  const valid = parseOps(ops.map((o) => ({ ...o })) as never);
  if (!valid.ok) throw new Error(`seed ${seed}: the generator wrote an invalid op: ${valid.error}`);

  // Apply in a few versions, then delete some facts in later versions.
  const r = rng(seed ^ 0x5eed);
  const store = new LocalStore();
  const decider = new Decider(store);
  let version = 0;
  const applyOps = (chunk: Op[]) => store.apply({ version: ++version, id: `v${version}`, ts: '', ops: chunk });
  for (let i = 0; i < ops.length; i += 7) applyOps(ops.slice(i, i + 7));
  const deletes: Op[] = ops.filter(() => r() < 0.15).map((o) => ({ op: 'delete', type: o.type, key: o.key }));
  applyOps(deletes);
  // And put a few back, so a fact removed and re-added is indexed again.
  const readded = ops.filter((o) => deletes.some((d) => d.type === o.type && d.key === o.key) && r() < 0.5);
  if (readded.length > 0) applyOps(readded);

  const oracle = new CedarOracle([...ops, ...deletes, ...readded]);
  const disagreements: string[] = [];
  let allowed = 0;
  for (const c of checks) {
    const n = normalizeCheck(c);
    if (!n.ok) throw new Error(n.error);
    const ours = decider.check(n.value, true);
    const theirs = oracle.isAllowed(c);
    if (theirs) allowed++;
    if (ours.allow) {
      const kind = ours.reason!.startsWith('role ') ? 'rbac' : ours.reason!.startsWith('rule ') ? 'abac' : ours.reason!.includes('which gives') ? 'rebac-derived' : 'rebac-direct';
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    if (ours.allow !== theirs) disagreements.push(`seed ${seed}: ${JSON.stringify(c)}: factsync ${ours.allow} (${ours.reason}), cedar ${theirs}`);
  }
  return { disagreements, checks: checks.length, allowed };
}

describe('evaluator agrees with Cedar', () => {
  it(`on ${MODELS} random models × ${CHECKS_PER_MODEL} checks (seed ${BASE_SEED})`, () => {
    const seeds = [...REGRESSIONS, ...Array.from({ length: MODELS }, (_, i) => BASE_SEED + i)];
    const all: string[] = [];
    let checks = 0;
    let allowed = 0;
    const kinds = new Map<string, number>();
    for (const seed of seeds) {
      const r = decide(seed, kinds);
      all.push(...r.disagreements);
      checks += r.checks;
      allowed += r.allowed;
    }
    // The models must exercise both answers, or agreement would mean nothing.
    expect(allowed).toBeGreaterThan(checks * 0.1);
    expect(allowed).toBeLessThan(checks * 0.9);
    // Every way to be allowed is exercised: roles, held and derived resource roles, rules.
    for (const kind of ['rbac', 'rebac-direct', 'rebac-derived', 'abac']) expect(kinds.get(kind) ?? 0, kind).toBeGreaterThan(20);
    expect(all.slice(0, 5), `${all.length} of ${checks} checks disagree; add the seeds to REGRESSIONS`).toEqual([]);
  });
});
