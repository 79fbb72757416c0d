import asyncio
import os

from permit import Permit

AGENT = os.environ.get("AGENT_URL", "http://localhost:7766")


async def main():
    permit = Permit(token="secret", pdp=AGENT, api_url=AGENT, proxy_facts_via_pdp=True, facts_sync_timeout=10)
    await permit.api.resources.create({"key": "task", "name": "Task", "actions": {"create": {}, "read": {}}})
    await permit.api.roles.create({"key": "viewer", "name": "Viewer", "permissions": ["task:read", "task:create"]})
    await permit.api.users.sync({"key": "john@smith.com", "email": "john@smith.com"})
    await permit.api.tenants.create({"key": "tenant2", "name": "Second Tenant"})
    await permit.api.users.assign_role({"user": "john@smith.com", "role": "viewer", "tenant": "tenant2"})
    print(await permit.check("john@smith.com", "create", {"type": "task", "tenant": "tenant2"}))  # True, on this agent at once


asyncio.run(main())
