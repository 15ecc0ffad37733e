from __future__ import annotations

import httpx

from tests.conftest import Tenant


async def test_me_and_users(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    me = await client.get("/api/v1/me", headers=tenant_a.headers)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == tenant_a.admin_email
    users = await client.get("/api/v1/users?limit=20", headers=tenant_a.headers)
    assert users.status_code == 200, users.text
    assert users.json()["total"] == 1
