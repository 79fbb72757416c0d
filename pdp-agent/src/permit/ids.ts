import { createHash } from 'node:crypto';

/**
 * Permit's objects carry UUIDs; factsync's facts are addressed by (type, key).
 * Every id an answer carries is a name-based UUID (RFC 9562 version 5: SHA-1
 * of a namespace and a name) of the env, the kind of object and its key, so
 * every agent of an env, and every restart of one, gives the same object the
 * same id, and an SDK talking to two agents sees one object.
 */

/** The namespace of every factsync id (a random UUID, fixed once). */
const NAMESPACE = Buffer.from('6f1c2a8e4b7d4e0f9a3c5d2e1b0a9f87', 'hex');

export function nameUuid(name: string): string {
  const h = createHash('sha1').update(NAMESPACE).update(name, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50; // version 5
  h[8] = (h[8]! & 0x3f) | 0x80; // RFC variant
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The kinds of object an id names; a user and a tenant with the same key are different objects. */
export type IdKind =
  | 'user' | 'tenant' | 'role' | 'resource' | 'resource_role' | 'resource_instance' | 'role_assignment' | 'relationship'
  | 'relation' | 'action' | 'attribute' | 'condition_set' | 'condition_set_rule' | 'derived_role';

/** The three ids of `GET /v2/api-key/scope`: one organisation and project for factsync, one environment per env. */
export interface Scope { organization_id: string; project_id: string; environment_id: string }

export function scopeOf(env: string): Scope {
  return {
    organization_id: nameUuid('organization\0factsync'),
    project_id: nameUuid('project\0default'),
    environment_id: nameUuid(`environment\0${env}`),
  };
}

/** The id generator of one env. */
export function idsFor(env: string): (kind: IdKind, key: string) => string {
  return (kind, key) => nameUuid(`${env}\0${kind}\0${key}`);
}
