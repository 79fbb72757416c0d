import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { attributeOf, parseAttributeTuple, parseRelationshipTuple, relationshipKey, userOps, validateOps } from '@factsync/shared';

describe('relationship tuples', () => {
  it('accepts object#relation@subject, including subject sets', () => {
    expect(parseRelationshipTuple('document:1#editor@user:1')).toEqual({ ok: true, value: { object: 'document:1', relation: 'editor', subject: 'user:1' } });
    expect(parseRelationshipTuple(' org:acme#member@group:eng#member ')).toEqual({ ok: true, value: { object: 'org:acme', relation: 'member', subject: 'group:eng#member' } });
  });
  it('rejects malformed tuples with the accepted form', () => {
    for (const t of ['', 'document:1', 'document:1#editor', '#editor@user:1', 'document:1#@user:1', 'document:1#editor@', 'doc 1#editor@user:1', 'a@b#c@d']) {
      const r = parseRelationshipTuple(t);
      expect(r.ok, t).toBe(false);
      if (!r.ok) expect(r.error).toContain('object#relation@subject');
    }
  });
  it('requires type:id on both sides (Zanzibar/Permify); a subject set type:id#relation stays valid', () => {
    for (const t of ['no-colon#rel@user:1', 'document:1#editor@nobody', 'Document:1#editor@user:1', 'document:#editor@user:1', 'document:1#editor@user:1#']) {
      const r = parseRelationshipTuple(t);
      expect(r.ok, t).toBe(false);
      if (!r.ok) expect(r.error).toMatch(/is not type:id/);
    }
    expect(validateOps([{ op: 'upsert', type: 'relationship', key: 'no-colon#rel@user:1', value: { object: 'no-colon', relation: 'rel', subject: 'user:1' } }]))
      .toMatchObject({ ok: false, error: expect.stringMatching(/object "no-colon" is not type:id/) });
    expect(parseRelationshipTuple('folder:f1#parent@folder:root').ok).toBe(true);
  });
  it('property: a tuple built from valid parts parses back to them, and its key is the tuple', () => {
    const entity = fc.tuple(fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/), fc.stringMatching(/^[a-z0-9:_.-]{1,12}$/)).map(([t, id]) => `${t}:${id}`);
    const relation = fc.stringMatching(/^[a-z0-9:_.-]{1,20}$/);
    const object = entity;
    const subject = fc.oneof(entity, fc.tuple(entity, relation).map(([e, r]) => `${e}#${r}`));
    fc.assert(fc.property(object, relation, subject, (o, rel, sub) => {
      const [object, relation, subject] = [o, rel, sub];
      const r = parseRelationshipTuple(`${object}#${relation}@${subject}`);
      expect(r).toEqual({ ok: true, value: { object, relation, subject } });
      if (r.ok) expect(relationshipKey(r.value)).toBe(`${object}#${relation}@${subject}`);
    }));
  });
});

describe('attribute tuples', () => {
  const cases: [string, string, unknown][] = [
    ['document:1$is_private|boolean:true', 'boolean', true],
    ['d$s|string:a:b|c', 'string', 'a:b|c'],
    ['d$s|string:', 'string', ''],
    ['d$n|integer:-42', 'integer', -42],
    ['d$x|double:1.5e3', 'double', 1500],
    ['d$t|string_array:a,b', 'string_array', ['a', 'b']],
    ['d$t|string[]:["a,b","c"]', 'string_array', ['a,b', 'c']],
    ['d$t|boolean[]:true, false', 'boolean_array', [true, false]],
    ['d$t|integer_array:[1,2]', 'integer_array', [1, 2]],
    ['d$t|double_array:', 'double_array', []],
  ];
  it.each(cases)('%s', (tuple, kind, value) => {
    const r = parseAttributeTuple(tuple);
    expect(r).toMatchObject({ ok: true, value: { kind, value } });
    // What parses must also pass the server's validation.
    if (r.ok && 'kind' in r.value) expect(validateOps([{ op: 'upsert', type: 'attribute', key: `${r.value.entity}$${r.value.attribute}`, value: r.value }]).ok).toBe(true);
  });
  it('rejects values that do not match their kind', () => {
    for (const [t, re] of [
      ['d$b|boolean:1', /not a boolean/], ['d$n|integer:1.5', /not an integer/], ['d$n|integer:99999999999999999999', /not an integer/],
      ['d$x|double:abc', /not a number/], ['d$t|integer_array:[1,"x"]', /^$/], ['d$x|colour:red', /kind "colour" is unknown/],
      ['d$x', /no \|kind:value part/], ['d|x', /not valid/], ['$x|string:a', /not valid/],
    ] as const) {
      const r = parseAttributeTuple(t);
      if (re.source === '^$') {
        // Parses as JSON, then the kind check refuses it.
        expect(r.ok && 'kind' in r.value && attributeOf({ entity: 'd', attribute: 't', kind: r.value.kind, value: r.value.value }).ok).toBe(false);
        continue;
      }
      expect(r.ok, t).toBe(false);
      if (!r.ok) expect(r.error).toMatch(re);
    }
  });
});

describe('users', () => {
  it('a user with roles is one user upsert plus one assignment per role, tenant defaulting to "default"', () => {
    const ops = userOps('u@x.io', { email: 'u@x.io', roles: [{ role: 'viewer' }, { role: 'admin', tenant: 'acme' }] });
    expect(ops).toEqual([
      { op: 'upsert', type: 'user', key: 'u@x.io', value: { email: 'u@x.io' } },
      { op: 'upsert', type: 'role_assignment', key: 'u@x.io/viewer/default', value: { user: 'u@x.io', role: 'viewer', tenant: 'default' } },
      { op: 'upsert', type: 'role_assignment', key: 'u@x.io/admin/acme', value: { user: 'u@x.io', role: 'admin', tenant: 'acme' } },
    ]);
    expect(validateOps(ops).ok).toBe(true);
  });

  it('an array kind takes a comma list in the JSON form as in the tuple form', () => {
    const json = attributeOf({ entity: 'document:1', attribute: 'tags', kind: 'string[]', value: 'a,b,c' });
    const tuple = parseAttributeTuple('document:1$tags|string[]:a,b,c');
    expect(json).toEqual({ ok: true, value: { entity: 'document:1', attribute: 'tags', kind: 'string_array', value: ['a', 'b', 'c'] } });
    expect(tuple).toEqual(json);
    expect(attributeOf({ entity: 'u:1', attribute: 'n', kind: 'integer_array', value: '1, 2' })).toMatchObject({ ok: true, value: { value: [1, 2] } });
    expect(attributeOf({ entity: 'u:1', attribute: 'n', kind: 'integer_array', value: '1,x' }).ok).toBe(false);
    // A string stays a string for a scalar kind.
    expect(attributeOf({ entity: 'u:1', attribute: 's', kind: 'string', value: 'a,b' })).toMatchObject({ ok: true, value: { value: 'a,b' } });
  });
});
