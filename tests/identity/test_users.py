"""Members and branches: CRUD, filters, bad input, role changes, scoping and tenancy."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import PASSWORD, Tenant, add_member, assert_problem, login
from touchstone.core.permissions import Role

API = "/api/v1"


def _email(tenant: Tenant, tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:6]}@{tenant.slug}.example.com"


async def _create(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> httpx.Response:
    body = {"email": _email(tenant, "user"), "full_name": "Some One", "role": "viewer"} | fields
    return await client.post(f"{API}/users", headers=tenant.headers, json=body)


async def _created(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await _create(client, tenant, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _list(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get(f"{API}/users", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _branch(client: httpx.AsyncClient, tenant: Tenant, code: str) -> str:
    response = await client.post(
        f"{API}/branches", headers=tenant.headers, json={"name": f"Branch {code}", "code": code}
    )
    assert response.status_code == 201, response.text
    branch_id: str = response.json()["id"]
    return branch_id


async def test_create_get_patch_and_list(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    email = _email(tenant_a, "Mixed.Case")
    created = await _created(
        client, tenant_a, email=email, full_name="  Ann Analyst ", role="analyst"
    )
    assert created["email"] == email.lower()
    assert created["full_name"] == "Ann Analyst"
    assert (created["role"], created["branch_id"], created["is_active"]) == ("analyst", None, True)
    assert "password_hash" not in created

    fetched = await client.get(f"{API}/users/{created['id']}", headers=tenant_a.headers)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == {k: v for k, v in created.items() if k != "invitation"}

    patched = await client.patch(
        f"{API}/users/{created['id']}",
        headers=tenant_a.headers,
        json={"full_name": "Ann Auditor", "role": "editor"},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["full_name"], patched.json()["role"]) == ("Ann Auditor", "editor")
    again = await client.get(f"{API}/users/{created['id']}", headers=tenant_a.headers)
    assert (again.json()["full_name"], again.json()["role"]) == ("Ann Auditor", "editor")

    listed = await _list(client, tenant_a.headers)
    assert listed["total"] == 2
    assert {u["email"] for u in listed["items"]} == {tenant_a.admin_email, email.lower()}
    assert (listed["limit"], listed["offset"]) == (20, 0)


async def test_patch_refuses_explicit_nulls(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    """`null` for a field that cannot be empty is bad input (a 422), never a 500."""
    user = await _created(client, tenant_a)
    for body in ({"role": None}, {"is_active": None}, {"full_name": None}, {"full_name": ""}):
        response = await client.patch(
            f"{API}/users/{user['id']}", headers=tenant_a.headers, json=body
        )
        assert_problem(response, 422, "invalid_input")
    unchanged = await client.get(f"{API}/users/{user['id']}", headers=tenant_a.headers)
    assert (unchanged.json()["role"], unchanged.json()["is_active"]) == ("viewer", True)


async def test_list_filters_sort_and_pages(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    zed = await _created(client, tenant_a, full_name="Zed Analyst", role="analyst")
    amy = await _created(client, tenant_a, full_name="Amy Viewer", role="viewer")
    gone = await _created(client, tenant_a, full_name="Bob Gone", role="viewer")
    deactivated = await client.patch(
        f"{API}/users/{gone['id']}", headers=tenant_a.headers, json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.text
    headers = tenant_a.headers

    viewers = await _list(client, headers, role="viewer")
    assert {u["id"] for u in viewers["items"]} == {amy["id"], gone["id"]}
    inactive = await _list(client, headers, is_active="false")
    assert [u["id"] for u in inactive["items"]] == [gone["id"]]
    active_viewers = await _list(client, headers, role="viewer", is_active="true")
    assert [u["id"] for u in active_viewers["items"]] == [amy["id"]]
    assert [u["id"] for u in (await _list(client, headers, q="ZED"))["items"]] == [zed["id"]]
    by_email = await _list(client, headers, q=amy["email"][:10])
    assert [u["id"] for u in by_email["items"]] == [amy["id"]]
    for wildcard in ("%", "_", "\\"):
        assert (await _list(client, headers, q=wildcard))["total"] == 0, wildcard

    by_name = [u["full_name"] for u in (await _list(client, headers, sort="full_name"))["items"]]
    assert by_name == sorted(by_name)
    assert len(by_name) == 4
    descending = await _list(client, headers, sort="-full_name")
    assert [u["full_name"] for u in descending["items"]] == by_name[::-1]

    first = await _list(client, headers, sort="email", limit=2)
    second = await _list(client, headers, sort="email", limit=2, offset=2)
    assert (first["total"], second["total"]) == (4, 4)
    assert len(first["items"]) == len(second["items"]) == 2
    emails = [u["email"] for u in first["items"] + second["items"]]
    assert emails == sorted(emails)
    beyond = await _list(client, headers, offset=50)
    assert (beyond["items"], beyond["total"]) == ([], 4)

    too_many = await client.get(f"{API}/users", headers=headers, params={"limit": 101})
    body = assert_problem(too_many, 422, "invalid_input")
    assert [(p["name"], p["in"]) for p in body["invalid_params"]] == [("limit", "query")]
    for params in (
        {"limit": 0},
        {"offset": -1},
        {"sort": "password_hash"},
        {"sort": "x;drop"},
        {"role": "wizard"},
        {"is_active": "maybe"},
        {"q": "x" * 101},
    ):
        response = await client.get(f"{API}/users", headers=headers, params=params)
        assert_problem(response, 422, "invalid_input")


async def test_duplicate_email_in_same_org_conflicts(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    email = _email(tenant_a, "dup")
    await _created(client, tenant_a, email=email)
    for again in (email, email.upper()):
        assert_problem(await _create(client, tenant_a, email=again), 409, "conflict")
    assert (await _list(client, tenant_a.headers, q="dup-"))["total"] == 1
    # The admin's own email is already a member too.
    assert_problem(await _create(client, tenant_a, email=tenant_a.admin_email), 409)


async def test_smuggled_fields_are_refused(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    member = await _created(client, tenant_a)
    smuggled: dict[str, Any] = {
        "org_id": str(tenant_b.org_id),
        "id": str(uuid.uuid4()),
        "is_platform_admin": True,
        "password_hash": "$argon2id$v=19$forged",
        "email_verified": True,
    }
    for name, value in smuggled.items():
        response = await _create(
            client, tenant_a, email=_email(tenant_a, "smuggler"), **{name: value}
        )
        body = assert_problem(response, 422, "invalid_input")
        assert [p["name"] for p in body["invalid_params"]] == [name]
        patched = await client.patch(
            f"{API}/users/{member['id']}",
            headers=tenant_a.headers,
            json={"full_name": "New Name", name: value},
        )
        assert_problem(patched, 422, "invalid_input")
    for tenant in (tenant_a, tenant_b):
        assert (await _list(client, tenant.headers, q="smuggler"))["total"] == 0
    still = await client.get(f"{API}/users/{member['id']}", headers=tenant_a.headers)
    assert still.json()["full_name"] == member["full_name"]


async def test_control_characters_are_refused(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    cases = [
        ("full_name", "Null\x00Byte"),
        ("full_name", "\x1b[31mred"),
        ("full_name", "bell\x07"),
        ("full_name", "del\x7f"),
        ("email", "nul\x00@example.com"),
        ("password", "long enough but \x00 inside"),
    ]
    for field, value in cases:
        response = await _create(client, tenant_a, **{field: value})
        assert_problem(response, 422, "invalid_input")
    assert (await _list(client, tenant_a.headers))["total"] == 1


async def test_control_characters_elsewhere_never_reach_the_database(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    user = await _created(client, tenant_a)
    attempts = [
        client.patch(
            f"{API}/users/{user['id']}", headers=tenant_a.headers, json={"full_name": "a\x00b"}
        ),
        client.post(
            f"{API}/users",
            headers=tenant_a.headers,
            json={
                "email": _email(tenant_a, "k"),
                "full_name": "x",
                "role": "viewer",
                "nick\x00name": "x",
            },
        ),
        client.post(
            f"{API}/branches", headers=tenant_a.headers, json={"name": "Main\x00", "code": "MAIN"}
        ),
        client.get(f"{API}/users", headers=tenant_a.headers, params={"q": "a\x00"}),
        client.get(f"{API}/audit-events", headers=tenant_a.headers, params={"action": "\x00"}),
        client.post(
            f"{API}/auth/invitations/accept", json={"token": "abcdefghij\x00", "password": PASSWORD}
        ),
    ]
    for attempt in attempts:
        response = await attempt
        assert_problem(response, 422)
    for header in (
        {"X-API-Key": "tsk_ab\x00cd_secret"},
        {"Authorization": "Bearer tsk_\x00_x"},
        {"Authorization": "Bearer eyJ\x00.x.y"},
    ):
        response = await client.get(f"{API}/users", headers=header)
        assert_problem(response, 401)


async def test_role_change_applies_to_the_next_request(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    user_id, headers = await add_member(client, tenant_a, Role.ORG_ADMIN)
    me = (await client.get(f"{API}/me", headers=headers)).json()
    assert "users:write" in me["permissions"]
    demoted = await client.patch(
        f"{API}/users/{user_id}", headers=tenant_a.headers, json={"role": "viewer"}
    )
    assert demoted.status_code == 200, demoted.text
    # The old sign-in is over at once, not when its access token expires.
    assert_problem(await _create_with(client, headers), 401)

    email = demoted.json()["email"]
    fresh = {"Authorization": f"Bearer {await login(client, email, org=tenant_a.slug)}"}
    assert_problem(await _create_with(client, fresh), 403, "forbidden")
    assert (await client.get(f"{API}/users", headers=fresh)).status_code == 200


async def _create_with(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post(
        f"{API}/users",
        headers=headers,
        json={"email": f"x-{uuid.uuid4().hex[:6]}@example.com", "full_name": "X", "role": "viewer"},
    )


async def test_deactivation_applies_to_the_next_request(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    user_id, headers = await add_member(client, tenant_a, Role.VIEWER)
    assert (await client.get(f"{API}/me", headers=headers)).status_code == 200
    email = (await client.get(f"{API}/me", headers=headers)).json()["email"]
    response = await client.patch(
        f"{API}/users/{user_id}", headers=tenant_a.headers, json={"is_active": False}
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    assert_problem(await client.get(f"{API}/me", headers=headers), 401)
    sign_in = await client.post(f"{API}/auth/token", data={"username": email, "password": PASSWORD})
    assert_problem(sign_in, 401, "invalid_credentials")

    reactivated = await client.patch(
        f"{API}/users/{user_id}", headers=tenant_a.headers, json={"is_active": True}
    )
    assert reactivated.status_code == 200, reactivated.text
    # Reactivation does not revive the old sign-in; signing in again works.
    assert_problem(await client.get(f"{API}/me", headers=headers), 401)
    await login(client, email)


async def test_last_admin_cannot_be_removed(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    admin_id = (await client.get(f"{API}/me", headers=tenant_a.headers)).json()["id"]
    url = f"{API}/users/{admin_id}"
    for body in ({"is_active": False}, {"role": "viewer"}, {"role": "branch_manager"}):
        response = await client.patch(url, headers=tenant_a.headers, json=body)
        assert_problem(response, 409, "last_admin")
    me = await client.get(f"{API}/me", headers=tenant_a.headers)
    assert me.status_code == 200, "a refused change must not end the admin's session"
    assert (
        me.json()["role"],
        (await client.get(url, headers=tenant_a.headers)).json()["is_active"],
    ) == ("org_admin", True)

    second_id, second = await add_member(client, tenant_a, Role.ORG_ADMIN)
    demoted = await client.patch(url, headers=second, json={"role": "viewer"})
    assert demoted.status_code == 200, demoted.text
    # Now the second admin is the last one, and cannot deactivate themself.
    response = await client.patch(
        f"{API}/users/{second_id}", headers=second, json={"is_active": False}
    )
    assert_problem(response, 409, "last_admin")


async def test_only_platform_admins_grant_platform_admin(
    client: httpx.AsyncClient, connection: AsyncConnection, tenant_a: Tenant
) -> None:
    email = _email(tenant_a, "climber")
    response = await _create(client, tenant_a, email=email, role="platform_admin")
    assert_problem(response, 403, "forbidden")
    assert (await _list(client, tenant_a.headers, q="climber"))["total"] == 0
    viewer = await _created(client, tenant_a)
    promoted = await client.patch(
        f"{API}/users/{viewer['id']}", headers=tenant_a.headers, json={"role": "platform_admin"}
    )
    assert_problem(promoted, 403, "forbidden")

    # The same request from a platform admin goes through.
    await connection.execute(
        text("select set_config('app.org_id', :org, true)"), {"org": str(tenant_a.org_id)}
    )
    updated = await connection.execute(
        text("update users set is_platform_admin = true where email = :e"),
        {"e": tenant_a.admin_email},
    )
    assert updated.rowcount == 1
    response = await _create(client, tenant_a, email=email, role="platform_admin")
    assert response.status_code == 201, response.text


async def test_branch_of_another_org_is_refused(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    foreign = await _branch(client, tenant_b, "B-MAIN")
    for branch_id in (foreign, str(uuid.uuid4())):
        response = await _create(client, tenant_a, branch_id=branch_id)
        assert_problem(response, 422, "invalid_input")
    assert (await _list(client, tenant_a.headers))["total"] == 1
    member = await _created(client, tenant_a)
    response = await client.patch(
        f"{API}/users/{member['id']}", headers=tenant_a.headers, json={"branch_id": foreign}
    )
    assert_problem(response, 422, "invalid_input")
    own = await _branch(client, tenant_a, "A-MAIN")
    moved = await client.patch(
        f"{API}/users/{member['id']}", headers=tenant_a.headers, json={"branch_id": own}
    )
    assert moved.json()["branch_id"] == own


async def test_branch_manager_sees_only_their_branch(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    north = await _branch(client, tenant_a, "NORTH")
    south = await _branch(client, tenant_a, "SOUTH")
    manager_id, manager = await add_member(client, tenant_a, Role.BRANCH_MANAGER, north)
    teller_north = await _created(client, tenant_a, branch_id=north, role="appraiser")
    teller_south = await _created(client, tenant_a, branch_id=south, role="appraiser")
    roaming = await _created(client, tenant_a)

    seen = await _list(client, manager)
    assert {u["id"] for u in seen["items"]} == {manager_id, teller_north["id"]}
    assert seen["total"] == 2
    assert (
        await client.get(f"{API}/users/{teller_north['id']}", headers=manager)
    ).status_code == 200
    for hidden in (teller_south["id"], roaming["id"]):
        assert_problem(await client.get(f"{API}/users/{hidden}", headers=manager), 404)
    branches = (await client.get(f"{API}/branches", headers=manager)).json()
    assert [b["id"] for b in branches["items"]] == [north]
    assert_problem(await client.get(f"{API}/branches/{south}", headers=manager), 404)
    everyone = await _list(client, tenant_a.headers)
    assert everyone["total"] == 5


async def test_viewer_cannot_change_anything(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    admin_id = (await client.get(f"{API}/me", headers=tenant_a.headers)).json()["id"]
    assert (await client.get(f"{API}/users", headers=viewer)).status_code == 200
    assert_problem(await _create_with(client, viewer), 403, "forbidden")
    patched = await client.patch(
        f"{API}/users/{admin_id}", headers=viewer, json={"is_active": False}
    )
    assert_problem(patched, 403, "forbidden")
    branch = await client.post(f"{API}/branches", headers=viewer, json={"name": "X", "code": "X"})
    assert_problem(branch, 403, "forbidden")
    assert (await _list(client, tenant_a.headers))["total"] == 2


async def test_other_tenant_gets_404_for_users(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    admin_a = (await client.get(f"{API}/me", headers=tenant_a.headers)).json()
    user_a = await _created(client, tenant_a)
    for user_id in (admin_a["id"], user_a["id"]):
        url = f"{API}/users/{user_id}"
        assert_problem(await client.get(url, headers=tenant_b.headers), 404, "not_found")
        patched = await client.patch(
            url, headers=tenant_b.headers, json={"full_name": "Owned", "is_active": False}
        )
        assert_problem(patched, 404, "not_found")
    # A random id looks exactly the same as another tenant's id.
    missing = await client.get(f"{API}/users/{uuid.uuid4()}", headers=tenant_b.headers)
    assert_problem(missing, 404, "not_found")
    after = await client.get(f"{API}/users/{user_a['id']}", headers=tenant_a.headers)
    assert (after.json()["full_name"], after.json()["is_active"]) == (user_a["full_name"], True)
    assert (await client.get(f"{API}/me", headers=tenant_a.headers)).status_code == 200
    assert user_a["email"] not in (await client.get(f"{API}/users", headers=tenant_b.headers)).text


async def test_branches_crud(client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant) -> None:
    created = await client.post(
        f"{API}/branches", headers=tenant_a.headers, json={"name": "Main Street", "code": "MAIN"}
    )
    assert created.status_code == 201, created.text
    branch = created.json()
    assert (branch["name"], branch["code"], branch["is_active"]) == ("Main Street", "MAIN", True)
    url = f"{API}/branches/{branch['id']}"

    assert (await client.get(url, headers=tenant_a.headers)).json() == branch
    listed = (await client.get(f"{API}/branches", headers=tenant_a.headers)).json()
    assert (listed["total"], listed["items"]) == (1, [branch])

    patched = await client.patch(
        url, headers=tenant_a.headers, json={"name": "Main Street Branch", "is_active": False}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["is_active"]) == ("Main Street Branch", False)
    assert (await client.get(url, headers=tenant_a.headers)).json()["is_active"] is False
    for body in ({"code": "NEW"}, {"name": None}, {"is_active": None}, {"org_id": "x"}):
        assert_problem(await client.patch(url, headers=tenant_a.headers, json=body), 422)

    duplicate = await client.post(
        f"{API}/branches", headers=tenant_a.headers, json={"name": "Another", "code": "MAIN"}
    )
    assert_problem(duplicate, 409, "conflict")
    for bad in (
        {"name": "X", "code": "has space"},
        {"name": "", "code": "OK"},
        {"name": "X", "code": "x" * 41},
        {"name": "X"},
    ):
        assert_problem(
            await client.post(f"{API}/branches", headers=tenant_a.headers, json=bad), 422
        )
    assert (await client.get(f"{API}/branches", headers=tenant_a.headers)).json()["total"] == 1

    # Codes are unique per org, not globally; and B cannot see or touch A's branch.
    same_code = await client.post(
        f"{API}/branches", headers=tenant_b.headers, json={"name": "B Main", "code": "MAIN"}
    )
    assert same_code.status_code == 201, same_code.text
    assert_problem(await client.get(url, headers=tenant_b.headers), 404, "not_found")
    hijack = await client.patch(url, headers=tenant_b.headers, json={"name": "Stolen"})
    assert_problem(hijack, 404, "not_found")
    b_list = (await client.get(f"{API}/branches", headers=tenant_b.headers)).json()
    assert [b["name"] for b in b_list["items"]] == ["B Main"]
    assert (await client.get(url, headers=tenant_a.headers)).json()["name"] == "Main Street Branch"
