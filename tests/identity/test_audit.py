"""Every state change leaves an audit event; the log is readable by admins and append-only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import PASSWORD, Tenant, add_member, assert_problem
from touchstone.core.permissions import Role

API = "/api/v1"


async def _events(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get(f"{API}/audit-events", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _request_id() -> str:
    return f"audit-{uuid.uuid4().hex}"


async def test_state_changes_are_audited(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    admin_id = (await client.get(f"{API}/me", headers=tenant_a.headers)).json()["id"]
    ids = {name: _request_id() for name in ("user", "key", "branch", "login")}

    user = await client.post(
        f"{API}/users",
        headers=tenant_a.headers | {"X-Request-ID": ids["user"]},
        json={
            "email": "audited@example.com",
            "full_name": "A",
            "role": "viewer",
            "password": PASSWORD,
        },
    )
    key = await client.post(
        f"{API}/api-keys",
        headers=tenant_a.headers | {"X-Request-ID": ids["key"]},
        json={"name": "robot", "scopes": ["users:read"]},
    )
    branch = await client.post(
        f"{API}/branches",
        headers=tenant_a.headers | {"X-Request-ID": ids["branch"]},
        json={"name": "Main", "code": "MAIN"},
    )
    login = await client.post(
        f"{API}/auth/token",
        headers={"X-Request-ID": ids["login"]},
        data={"username": "audited@example.com", "password": PASSWORD},
    )
    for response in (user, key, branch):
        assert response.status_code == 201, response.text
    assert login.status_code == 200, login.text

    expected = {
        "user": ("user.created", "user", user.json()["id"], admin_id),
        "key": ("api_key.created", "api_key", key.json()["id"], admin_id),
        "branch": ("branch.created", "branch", branch.json()["id"], admin_id),
        "login": ("auth.login", "user", user.json()["id"], user.json()["id"]),
    }
    for name, (action, object_type, object_id, actor_id) in expected.items():
        found = (await _events(client, tenant_a.headers, action=action))["items"]
        matching = [e for e in found if e["object_id"] == object_id]
        assert len(matching) == 1, (action, found)
        event = matching[0]
        assert event["object_type"] == object_type
        assert (event["actor_type"], event["actor_id"]) == ("user", actor_id)
        assert event["request_id"] == ids[name]
        occurred = datetime.fromisoformat(event["occurred_at"])
        assert abs(datetime.now(UTC) - occurred) < timedelta(minutes=5)

    created = (await _events(client, tenant_a.headers, action="user.created"))["items"][0]
    assert created["changes"]["email"] == "audited@example.com"
    assert created["changes"]["role"] == "viewer"
    everything = await client.get(
        f"{API}/audit-events", headers=tenant_a.headers, params={"limit": 100}
    )
    assert PASSWORD not in everything.text
    secret = key.json()["key"].split("_", 2)[2]  # tsk_<prefix>_<secret>; secrets may hold "_"
    assert secret not in everything.text, "secrets stay out"


async def test_updates_and_revocations_are_audited(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    user = (
        await client.post(
            f"{API}/users",
            headers=tenant_a.headers,
            json={"email": "changed@example.com", "full_name": "Before", "role": "viewer"},
        )
    ).json()
    await client.patch(
        f"{API}/users/{user['id']}",
        headers=tenant_a.headers,
        json={"full_name": "After", "role": "analyst"},
    )
    key = (
        await client.post(
            f"{API}/api-keys",
            headers=tenant_a.headers,
            json={"name": "k", "scopes": ["users:read"]},
        )
    ).json()
    await client.delete(f"{API}/api-keys/{key['id']}", headers=tenant_a.headers)

    (updated,) = (await _events(client, tenant_a.headers, action="user.updated"))["items"]
    assert updated["object_id"] == user["id"]
    assert updated["changes"] == {"full_name": ["Before", "After"], "role": ["viewer", "analyst"]}
    (revoked,) = (await _events(client, tenant_a.headers, action="api_key.revoked"))["items"]
    assert revoked["object_id"] == key["id"]


async def test_refused_changes_leave_no_event(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    body = {"email": "once@example.com", "full_name": "Once", "role": "viewer"}
    assert (
        await client.post(f"{API}/users", headers=tenant_a.headers, json=body)
    ).status_code == 201
    duplicate = await client.post(f"{API}/users", headers=tenant_a.headers, json=body)
    assert_problem(duplicate, 409)
    me = (await client.get(f"{API}/me", headers=tenant_a.headers)).json()
    demote = await client.patch(
        f"{API}/users/{me['id']}", headers=tenant_a.headers, json={"role": "viewer"}
    )
    assert_problem(demote, 409, "last_admin")
    assert (await _events(client, tenant_a.headers, action="user.created"))["total"] == 1
    assert (await _events(client, tenant_a.headers, action="user.updated"))["total"] == 0


async def test_refresh_token_reuse_is_audited(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    """The refusal is an error, yet its audit event (and the revocation) must be kept."""
    tokens = (
        await client.post(
            f"{API}/auth/token", data={"username": tenant_a.admin_email, "password": PASSWORD}
        )
    ).json()
    url = f"{API}/auth/refresh"
    assert (
        await client.post(url, json={"refresh_token": tokens["refresh_token"]})
    ).status_code == 200
    reuse = await client.post(url, json={"refresh_token": tokens["refresh_token"]})
    assert_problem(reuse, 401, "refresh_token_reused")
    (event,) = (await _events(client, tenant_a.headers, action="auth.refresh_reuse_detected"))[
        "items"
    ]
    assert event["actor_type"] == "system"
    assert event["request_id"] == reuse.headers["x-request-id"]


async def test_filters_and_pages(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    admin_id = (await client.get(f"{API}/me", headers=tenant_a.headers)).json()["id"]
    viewer_id, _ = await add_member(client, tenant_a, Role.VIEWER)
    for code in ("ONE", "TWO"):
        response = await client.post(
            f"{API}/branches", headers=tenant_a.headers, json={"name": code, "code": code}
        )
        assert response.status_code == 201, response.text

    everything = await _events(client, tenant_a.headers, limit=100)
    events = everything["items"]
    # org.created, admin login, user.created, viewer login, 2 x branch.created
    assert everything["total"] == len(events) == 6
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times, reverse=True), "newest first by default"
    ascending = await _events(client, tenant_a.headers, sort="occurred_at", limit=100)
    assert [e["id"] for e in ascending["items"]] == [e["id"] for e in events][::-1]

    branches = await _events(client, tenant_a.headers, action="branch.created")
    assert branches["total"] == 2
    assert {e["action"] for e in branches["items"]} == {"branch.created"}
    of_users = await _events(client, tenant_a.headers, object_type="user")
    assert {e["action"] for e in of_users["items"]} == {"auth.login", "user.created"}
    by_viewer = await _events(client, tenant_a.headers, actor_id=viewer_id)
    assert [(e["action"], e["object_id"]) for e in by_viewer["items"]] == [
        ("auth.login", viewer_id)
    ]
    by_admin = await _events(client, tenant_a.headers, actor_id=admin_id)
    assert by_admin["total"] == 4
    combined = await _events(client, tenant_a.headers, actor_id=admin_id, object_type="user")
    assert {e["action"] for e in combined["items"]} == {"auth.login", "user.created"}

    middle = events[2]["occurred_at"]
    since = await _events(client, tenant_a.headers, since=middle, limit=100)
    assert [e["id"] for e in since["items"]] == [e["id"] for e in events[:3]]
    until = await _events(client, tenant_a.headers, until=middle, limit=100)
    assert [e["id"] for e in until["items"]] == [e["id"] for e in events[3:]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await _events(client, tenant_a.headers, since=future))["total"] == 0
    assert (await _events(client, tenant_a.headers, until="2000-01-01T00:00:00Z"))["total"] == 0

    pages = [await _events(client, tenant_a.headers, limit=4, offset=offset) for offset in (0, 4)]
    assert [len(p["items"]) for p in pages] == [4, 2]
    assert all(p["total"] == 6 for p in pages)
    assert [e["id"] for p in pages for e in p["items"]] == [e["id"] for e in events]

    for params in (
        {"since": "yesterday"},
        {"actor_id": "me"},
        {"sort": "action"},
        {"limit": 101},
        {"action": "x" * 81},
    ):
        response = await client.get(f"{API}/audit-events", headers=tenant_a.headers, params=params)
        assert_problem(response, 422, "invalid_input")


async def test_audit_log_is_for_admins_of_the_same_org(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    assert_problem(await client.get(f"{API}/audit-events", headers=viewer), 403, "forbidden")
    marker = _request_id()
    await client.post(
        f"{API}/branches",
        headers=tenant_a.headers | {"X-Request-ID": marker},
        json={"name": "Main", "code": "MAIN"},
    )
    assert marker in (await client.get(f"{API}/audit-events", headers=tenant_a.headers)).text
    b_events = await _events(client, tenant_b.headers, limit=100)
    assert marker not in str(b_events)
    assert {e["action"] for e in b_events["items"]} == {"org.created", "auth.login"}


@pytest.mark.parametrize(
    "statement",
    [
        "update audit_events set action = 'tampered'",
        "delete from audit_events",
        "truncate audit_events",
    ],
)
async def test_runtime_role_cannot_rewrite_history(
    connection: AsyncConnection, tenant_a: Tenant, statement: str
) -> None:
    await connection.execute(
        text("select set_config('app.org_id', :org, true)"), {"org": str(tenant_a.org_id)}
    )
    count = text("select count(*) from audit_events")
    before = (await connection.execute(count)).scalar_one()
    assert before >= 2
    with pytest.raises(DBAPIError, match="permission denied"):
        async with connection.begin_nested():
            await connection.execute(text(statement))
    assert (await connection.execute(count)).scalar_one() == before
    tampered = text("select count(*) from audit_events where action = 'tampered'")
    assert (await connection.execute(tampered)).scalar_one() == 0
    # Appending is still allowed: the restriction is exactly UPDATE/DELETE/TRUNCATE.
    async with connection.begin_nested():
        await connection.execute(
            text(
                "insert into audit_events (id, org_id, actor_type, action, object_type, changes) "
                "values (gen_random_uuid(), :org, 'system', 'test.appended', 'test', '{}')"
            ),
            {"org": str(tenant_a.org_id)},
        )
    assert (await connection.execute(count)).scalar_one() == before + 1
