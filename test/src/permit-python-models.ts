import { Type, type TSchema } from '@sinclair/typebox';

/**
 * JSON Schemas of the replies the Permit Python SDK (`permit` 2.x) validates,
 * written from its pydantic (v1) models in `permit/api/models.py`,
 * `permit/pdp_api/models.py` and `permit/enforcement/interfaces.py`: every
 * field the model requires is required here, with the model's type (UUID,
 * datetime, EmailStr); optional fields may be null; extra fields are allowed
 * (every model sets `extra = allow`). A reply that passes here is one the SDK
 * accepts; a missing field fails a test instead of a customer's call.
 */

const uuid = Type.String({ format: 'uuid' });
const time = Type.String({ format: 'date-time' });
const str = Type.String();
const opt = (t: TSchema) => Type.Optional(Type.Union([t, Type.Null()]));
const obj = (props: Record<string, TSchema>) => Type.Object(props, { additionalProperties: true });
const dict = (t: TSchema = Type.Unknown()) => Type.Record(Type.String(), t);
const ids = { organization_id: uuid, project_id: uuid, environment_id: uuid, created_at: time, updated_at: time };

export const APIKeyScopeRead = obj({ organization_id: uuid, project_id: opt(uuid), environment_id: opt(uuid) });

const UserRole = obj({ role: str, tenant: str });
const UserResourceInstanceRole = obj({ resource_instance: str, resource: str, role: str });
const UserInTenant = obj({
  tenant: str, roles: Type.Array(str), status: Type.Union([Type.Literal('active'), Type.Literal('pending')]),
  resource_instance_roles: opt(Type.Array(UserResourceInstanceRole)),
});
export const UserRead = obj({
  key: str, id: uuid, ...ids,
  associated_tenants: opt(Type.Array(UserInTenant)), roles: opt(Type.Array(UserRole)),
  email: opt(Type.String({ format: 'email' })), first_name: opt(str), last_name: opt(str), attributes: opt(dict()),
});
const paginated = (item: TSchema) => obj({ data: Type.Array(item), total_count: Type.Integer({ minimum: 0 }), page_count: opt(Type.Integer({ minimum: 0 })) });
export const PaginatedResultUserRead = paginated(UserRead);

export const TenantRead = obj({ key: str, id: uuid, ...ids, last_action_at: time, name: str, description: opt(str), attributes: opt(dict()) });

export const RoleAssignmentRead = obj({
  id: uuid, user: str, role: str, tenant: opt(str), resource_instance: opt(str), resource_instance_id: opt(uuid),
  user_id: uuid, role_id: uuid, tenant_id: uuid, organization_id: uuid, project_id: uuid, environment_id: uuid, created_at: time,
});
export const BulkRoleAssignmentReport = obj({ assignments_created: Type.Optional(Type.Integer()) });
export const BulkRoleUnAssignmentReport = obj({ assignments_removed: Type.Optional(Type.Integer()) });

export const RelationshipTupleRead = obj({
  subject: str, relation: str, object: str, id: uuid, tenant: str,
  subject_id: uuid, relation_id: uuid, object_id: uuid, tenant_id: uuid, ...ids,
});

export const ResourceInstanceRead = obj({
  key: str, tenant: str, resource: str, id: uuid, ...ids, resource_id: uuid, tenant_id: uuid, attributes: opt(dict()),
});

const ActionBlockRead = obj({ name: opt(str), description: opt(str), id: uuid, key: opt(str) });
const ATTRIBUTE_TYPES = ['bool', 'number', 'string', 'time', 'array', 'json', 'object', 'object_array'].map((t) => Type.Literal(t));
const AttributeBlockRead = obj({ type: Type.Union(ATTRIBUTE_TYPES), description: opt(str), id: uuid, key: opt(str) });
const RelationBlockRead = obj({ description: opt(str), resource_id: uuid, relation_name: opt(str), resource: str });
const DerivedRoleRuleRead = obj({ role_id: uuid, resource_id: uuid, relation_id: uuid, role: str, on_resource: str, linked_by_relation: str });
const DerivedRoleBlockRead = obj({ id: uuid, users_with_role: opt(Type.Array(DerivedRoleRuleRead)) });
export const ResourceRoleRead = obj({
  name: str, description: opt(str), permissions: opt(Type.Array(str)), attributes: opt(dict()), extends: opt(Type.Array(str)),
  granted_to: opt(DerivedRoleBlockRead), key: str, id: uuid, ...ids, resource_id: uuid, resource: str,
});
export const ResourceRead = obj({
  key: str, id: uuid, ...ids, name: str, urn: opt(str), description: opt(str),
  actions: opt(dict(ActionBlockRead)), type_attributes: opt(dict()), attributes: opt(dict(AttributeBlockRead)),
  roles: opt(Type.Record(Type.String({ pattern: '^[A-Za-z0-9\\-_]+$' }), ResourceRoleRead)), relations: opt(dict(RelationBlockRead)),
  action_groups: opt(dict(Type.Array(str))),
});
export const RoleRead = obj({
  name: str, description: opt(str), permissions: opt(Type.Array(str)), attributes: opt(dict()), extends: opt(Type.Array(str)),
  granted_to: opt(DerivedRoleBlockRead), key: str, id: uuid, ...ids,
});
export const ResourceActionRead = obj({ name: str, description: opt(str), attributes: opt(dict()), key: str, id: uuid, permission_name: str, ...ids, resource_id: uuid });
export const ResourceAttributeRead = obj({
  type: Type.Union(ATTRIBUTE_TYPES), description: opt(str), key: str, id: uuid, resource_id: uuid, resource_key: str, ...ids, built_in: Type.Boolean(),
});
export const RelationRead = obj({
  description: opt(str), subject_resource: str, key: str, name: str, id: uuid, ...ids, object_resource_id: uuid, object_resource: str, subject_resource_id: uuid,
});
export const ConditionSetRead = obj({
  key: str, type: opt(Type.Union([Type.Literal('userset'), Type.Literal('resourceset')])), autogenerated: opt(Type.Boolean()),
  resource_id: opt(str), id: uuid, ...ids, resource: opt(ResourceRead), name: str, description: opt(str), conditions: opt(dict()), parent_id: opt(str),
});
export const ConditionSetRuleRead = obj({ id: uuid, key: str, user_set: str, permission: str, resource_set: str, ...ids });

/** The bulk operation results are models without fields: any object. */
export const BulkOperationResult = obj({});

/** `permit/enforcement/interfaces.py`. */
export const AuthorizedUsersResult = obj({
  resource: str, tenant: str,
  users: dict(Type.Array(obj({ user: str, tenant: str, resource: str, role: str }))),
});
/** `permit/pdp_api/models.py`: `GET /local/role_assignments`. */
export const PdpRoleAssignment = obj({ user: str, role: str, tenant: str, resource_instance: opt(str) });

/** The Java SDK's `TenantDetails[]` (`/user-tenants`) and `AllTenantsResult` (`/allowed/all-tenants`), read by Gson. */
export const JavaTenantDetails = obj({ key: str, attributes: dict() });
export const JavaAllTenantsResult = obj({ allowed_tenants: Type.Array(obj({ tenant: JavaTenantDetails, allow: Type.Boolean() })) });

export const list = (item: TSchema) => Type.Array(item);
