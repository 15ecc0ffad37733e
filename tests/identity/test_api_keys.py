"""API keys: shown once, stored hashed, scoped, revocable, and confined to their tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import Tenant, add_member, assert_problem
from touchstone.core.permissions import Role

API = "/api/v1"


async def _new_key(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    scopes: list[str],
    name: str = "robot",
    **extra: Any,
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/api-keys", headers=headers, json={"name": name, "scopes": scopes, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _as_bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _keys(client: httpx.AsyncClient, tenant: Tenant) -> httpx.Response:
    response = await client.get(f"{API}/api-keys", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response


async def test_key_is_shown_once_and_never_listed(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await _new_key(
        client, tenant_a.headers, ["users:write", "users:read"], name="statements importer"
    )
    key = created["key"]
    assert key.startswith(f"tsk_{created['prefix']}_")
    secret = key.removeprefix(f"tsk_{created['prefix']}_")
    assert len(secret) >= 32
    assert created["scopes"] == ["users:read", "users:write"]
    assert (created["last_used_at"], created["revoked_at"], created["expires_at"]) == (
        None,
        None,
        None,
    )

    listed = await _keys(client, tenant_a)
    assert secret not in listed.text
    (item,) = listed.json()["items"]
    assert "key" not in item
    assert "secret_hash" not in item
    assert item["prefix"] == created["prefix"]
    assert item["scopes"] == ["users:read", "users:write"]
    assert item["name"] == "statements importer"
    assert item["last_used_at"] is None


async def test_key_works_as_bearer_and_header(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    created = await _new_key(client, tenant_a.headers, ["users:read"])
    for headers in (_as_bearer(created["key"]), {"X-API-Key": created["key"]}):
        response = await client.get(f"{API}/users", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["items"][0]["email"] == tenant_a.admin_email
    me = (await client.get(f"{API}/me", headers={"X-API-Key": created["key"]})).json()
    assert (me["id"], me["org_id"], me["permissions"]) == (
        created["id"],
        str(tenant_a.org_id),
        ["users:read"],
    )

    (item,) = (await _keys(client, tenant_a)).json()["items"]
    used_at = datetime.fromisoformat(item["last_used_at"])
    assert abs(datetime.now(UTC) - used_at) < timedelta(minutes=5)


async def test_scopes_limit_what_a_key_can_do(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    reader = _as_bearer((await _new_key(client, tenant_a.headers, ["users:read"]))["key"])
    assert (await client.get(f"{API}/users", headers=reader)).status_code == 200
    created = await client.post(
        f"{API}/users",
        headers=reader,
        json={"email": "robot-made@example.com", "full_name": "R", "role": "viewer"},
    )
    assert_problem(created, 403, "forbidden")
    for path in ("/api-keys", "/audit-events", "/branches"):
        assert_problem(await client.get(f"{API}{path}", headers=reader), 403, "forbidden")
    assert "robot-made" not in (await client.get(f"{API}/users", headers=reader)).text


async def test_cannot_grant_scopes_you_do_not_hold(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    response = await client.post(
        f"{API}/api-keys",
        headers=tenant_a.headers,
        json={"name": "escalate", "scopes": ["platform:orgs"]},
    )
    assert_problem(response, 403, "forbidden")
    # A key allowed to mint keys cannot mint one stronger than itself.
    minter = _as_bearer(
        (await _new_key(client, tenant_a.headers, ["api_keys:write", "users:read"]))["key"]
    )
    weaker = await client.post(
        f"{API}/api-keys", headers=minter, json={"name": "child", "scopes": ["users:read"]}
    )
    assert weaker.status_code == 201, weaker.text
    stronger = await client.post(
        f"{API}/api-keys", headers=minter, json={"name": "child", "scopes": ["users:write"]}
    )
    assert_problem(stronger, 403, "forbidden")
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    by_viewer = await client.post(
        f"{API}/api-keys", headers=viewer, json={"name": "v", "scopes": ["users:read"]}
    )
    assert_problem(by_viewer, 403, "forbidden")
    assert (await _keys(client, tenant_a)).json()["total"] == 2


async def test_bad_key_requests_are_refused(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    cases: list[dict[str, Any]] = [
        {"name": "x", "scopes": ["nope:nothing"]},
        {"name": "x", "scopes": ["users:read", "made:up"]},
        {"name": "x", "scopes": ["USERS:READ"]},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["users:read"], "org_id": str(tenant_a.org_id)},
        {"name": "x", "scopes": ["users:read"], "prefix": "chosen"},
        {"name": "x", "scopes": ["users:read"], "expires_at": "2000-01-01T00:00:00Z"},
        {"name": "x", "scopes": ["users:read"], "expires_at": "2999-01-01T00:00:00"},
    ]
    for body in cases:
        response = await client.post(f"{API}/api-keys", headers=tenant_a.headers, json=body)
        assert_problem(response, 422, "invalid_input")
    assert (await _keys(client, tenant_a)).json()["total"] == 0


async def test_revoked_key_stops_working(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    created = await _new_key(client, tenant_a.headers, ["users:read"])
    headers = {"X-API-Key": created["key"]}
    assert (await client.get(f"{API}/users", headers=headers)).status_code == 200
    revoked = await client.delete(f"{API}/api-keys/{created['id']}", headers=tenant_a.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    for attempt in (headers, _as_bearer(created["key"])):
        response = await client.get(f"{API}/users", headers=attempt)
        assert_problem(response, 401, "api_key_invalid")
        assert response.headers["www-authenticate"] == "Bearer"
    again = await client.delete(f"{API}/api-keys/{created['id']}", headers=tenant_a.headers)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_expired_key_stops_working(
    client: httpx.AsyncClient, connection: AsyncConnection, tenant_a: Tenant
) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = await _new_key(client, tenant_a.headers, ["users:read"], expires_at=soon)
    headers = {"X-API-Key": created["key"]}
    assert (await client.get(f"{API}/users", headers=headers)).status_code == 200
    await connection.execute(
        text("select set_config('app.org_id', :org, true)"), {"org": str(tenant_a.org_id)}
    )
    await connection.execute(
        text("update api_keys set expires_at = now() - interval '1 second' where id = :id"),
        {"id": created["id"]},
    )
    assert_problem(await client.get(f"{API}/users", headers=headers), 401, "api_key_invalid")


async def test_garbage_keys_are_refused(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    real = await _new_key(client, tenant_a.headers, ["users:read"])
    prefix = real["prefix"]
    garbage = [
        "tsk_",
        "tsk_nounderscore",
        f"tsk_{prefix}_",
        f"tsk_{prefix}_wrong-secret",
        f"tsk_{prefix}x_" + real["key"].rsplit("_", 1)[-1],
        "tsk_" + "a" * 300 + "_b",
        "not-even-close",
        real["key"][:-1],
    ]
    for key in garbage:
        for headers in ({"X-API-Key": key}, _as_bearer(key)):
            response = await client.get(f"{API}/users", headers=headers)
            if key.startswith("tsk_") or "X-API-Key" in headers:
                assert_problem(response, 401, "api_key_invalid")
            else:
                assert_problem(response, 401, "unauthorized")


async def test_keys_are_confined_to_their_tenant(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    created = await _new_key(client, tenant_a.headers, ["users:read"])
    url = f"{API}/api-keys/{created['id']}"
    assert_problem(await client.delete(url, headers=tenant_b.headers), 404, "not_found")
    assert created["prefix"] not in (await _keys(client, tenant_b)).text
    headers = {"X-API-Key": created["key"]}
    listed = (await client.get(f"{API}/users", headers=headers)).json()
    assert [u["email"] for u in listed["items"]] == [tenant_a.admin_email]
    b_admin = (await client.get(f"{API}/me", headers=tenant_b.headers)).json()["id"]
    assert_problem(await client.get(f"{API}/users/{b_admin}", headers=headers), 404)
    (item,) = (await _keys(client, tenant_a)).json()["items"]
    assert item["revoked_at"] is None


async def test_logout_needs_a_session_not_a_key(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await _new_key(client, tenant_a.headers, ["users:read"])
    response = await client.post(f"{API}/auth/logout", headers={"X-API-Key": created["key"]})
    assert_problem(response, 422, "invalid_input")
    assert (
        await client.get(f"{API}/users", headers={"X-API-Key": created["key"]})
    ).status_code == 200
