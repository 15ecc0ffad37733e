"""Sessions and keys end with what they belong to: the org, and the key's creator."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import PASSWORD, Tenant, add_member, assert_problem
from tests.security.world import make_platform_admin
from touchstone.core.permissions import Role

API = "/api/v1"


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _key(client: httpx.AsyncClient, headers: dict[str, str], scopes: list[str]) -> Any:
    response = await client.post(
        f"{API}/api-keys", headers=headers, json={"name": "robot", "scopes": scopes}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _set_active(
    client: httpx.AsyncClient, operator: Tenant, org: Tenant, active: bool
) -> httpx.Response:
    return await client.patch(
        f"{API}/platform/orgs/{org.org_id}", headers=operator.headers, json={"is_active": active}
    )


async def test_a_deactivated_org_loses_tokens_refresh_keys_and_sign_in(
    client: httpx.AsyncClient, connection: AsyncConnection, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    signed_in = await client.post(
        f"{API}/auth/token", data={"username": tenant_a.admin_email, "password": PASSWORD}
    )
    refresh_token = signed_in.json()["refresh_token"]
    key = await _key(client, tenant_a.headers, ["users:read"])
    await make_platform_admin(connection, tenant_b)

    response = await _set_active(client, tenant_b, tenant_a, False)
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False

    assert_problem(await client.get(f"{API}/me", headers=tenant_a.headers), 401)
    assert_problem(
        await client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token}), 401
    )
    assert_problem(await client.get(f"{API}/users", headers=_bearer(key["key"])), 401)
    form = {"username": tenant_a.admin_email, "password": PASSWORD}
    assert_problem(await client.post(f"{API}/auth/token", data=form), 401)

    assert (await _set_active(client, tenant_b, tenant_a, True)).status_code == 200
    assert (await client.post(f"{API}/auth/token", data=form)).status_code == 200
    # Reactivation lets people sign in again; the sessions it ended stay ended.
    assert_problem(await client.get(f"{API}/me", headers=tenant_a.headers), 401)
    await connection.execute(
        text("select set_config('app.org_id', :org, true)"), {"org": str(tenant_a.org_id)}
    )
    actions = (
        await connection.execute(
            text("select action from audit_events where object_type = 'org' order by occurred_at")
        )
    ).scalars()
    assert list(actions)[-2:] == ["org.deactivated", "org.activated"]


async def test_only_platform_admins_change_an_orgs_status(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    for org in (tenant_a, tenant_b):
        assert_problem(await _set_active(client, tenant_a, org, False), 403)
    assert (await client.get(f"{API}/me", headers=tenant_b.headers)).status_code == 200


async def test_a_key_dies_with_its_creators_membership(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    creator_id, creator = await add_member(client, tenant_a, Role.ORG_ADMIN)
    key = await _key(client, creator, ["users:read"])
    listed = (await client.get(f"{API}/api-keys", headers=tenant_a.headers)).json()["items"]
    assert [k["created_by"] for k in listed if k["id"] == key["id"]] == [creator_id]
    assert (await client.get(f"{API}/users", headers=_bearer(key["key"]))).status_code == 200

    deactivated = await client.patch(
        f"{API}/users/{creator_id}", headers=tenant_a.headers, json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.text
    assert_problem(await client.get(f"{API}/users", headers=_bearer(key["key"])), 401)
    shown = await client.get(f"{API}/api-keys", headers=tenant_a.headers)
    assert [k["revoked_at"] is not None for k in shown.json()["items"] if k["id"] == key["id"]] == [
        True
    ]


async def test_a_role_change_revokes_the_creators_keys_beyond_the_new_role(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    creator_id, creator = await add_member(client, tenant_a, Role.ORG_ADMIN)
    admin_key = await _key(client, creator, ["users:write"])
    reader_key = await _key(client, creator, ["statements:read"])

    demoted = await client.patch(
        f"{API}/users/{creator_id}", headers=tenant_a.headers, json={"role": "analyst"}
    )
    assert demoted.status_code == 200, demoted.text
    assert_problem(await client.get(f"{API}/users", headers=_bearer(admin_key["key"])), 401)
    kept = await client.get(f"{API}/batches", headers=_bearer(reader_key["key"]))
    assert kept.status_code == 200, kept.text
