"""Accounts belong to one org: nothing tenant B does to an email changes tenant A's account.

Each test is an attack an outside run made through the shared user table: B planting a
password for an address A adds later, B learning that an address exists in A, B renaming A's
person, B's account for the same email blocking A's sign-in.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import PASSWORD, Tenant, assert_problem, login
from tests.mail import queued, token_in
from touchstone.core.config import Settings
from touchstone.core.db import Database

API = "/api/v1"
PLANTED = "Attacker-chosen-pw1"


def _new_email(tenant: Tenant) -> str:
    return f"newhire-{uuid.uuid4().hex[:6]}@{tenant.slug}.example.com"


async def _add(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/users", headers=tenant.headers, json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _sign_in(client: httpx.AsyncClient, email: str, password: str, **extra: str) -> Any:
    return await client.post(
        f"{API}/auth/token", data={"username": email, "password": password, **extra}
    )


async def test_a_password_planted_by_another_tenant_opens_nothing_in_yours(
    client: httpx.AsyncClient,
    tenant_a: Tenant,
    tenant_b: Tenant,
    database: Database,
    settings: Settings,
) -> None:
    email = _new_email(tenant_a)
    await _add(
        client, tenant_b, email=email, full_name="Planted by B", role="viewer", password=PLANTED
    )
    in_a = await _add(client, tenant_a, email=email, full_name="New Hire", role="org_admin")

    assert in_a["full_name"] == "New Hire"
    assert in_a["invitation"], "A's new member must be invited like any new address"
    (invitation,) = await queued(database, settings, tenant_a.org_id, email)
    assert_problem(await _sign_in(client, email, PLANTED, org=tenant_a.slug), 401)
    # B's password opens B's own account and nothing else.
    planted = await _sign_in(client, email, PLANTED)
    assert planted.status_code == 200, planted.text
    assert planted.json()["org_id"] == str(tenant_b.org_id)

    accepted = await client.post(
        f"{API}/auth/invitations/accept",
        json={"token": token_in(invitation), "password": PASSWORD},
    )
    assert accepted.status_code == 204, accepted.text
    mine = await _sign_in(client, email, PASSWORD)
    assert mine.status_code == 200, mine.text
    assert mine.json()["org_id"] == str(tenant_a.org_id)
    me = await client.get(
        f"{API}/me", headers={"Authorization": f"Bearer {mine.json()['access_token']}"}
    )
    assert (me.json()["role"], me.json()["full_name"]) == ("org_admin", "New Hire")


async def test_adding_an_email_reveals_nothing_about_other_tenants(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    known = _new_email(tenant_a)
    await _add(client, tenant_a, email=known, full_name="Named by A", role="analyst")
    unknown = _new_email(tenant_a)

    answers = [
        await _add(client, tenant_b, email=email, full_name="Named by B", role="viewer")
        for email in (known, unknown)
    ]
    for answer in answers:
        assert answer["full_name"] == "Named by B"
        assert answer["invitation"]
    assert answers[0].keys() == answers[1].keys()
    assert {a["id"] for a in answers}.isdisjoint(
        {
            u["id"]
            for u in (await client.get(f"{API}/users", headers=tenant_a.headers)).json()["items"]
        }
    )


async def test_renaming_or_deactivating_your_account_leaves_the_same_email_elsewhere_alone(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    email = _new_email(tenant_a)
    in_a = await _add(
        client, tenant_a, email=email, full_name="Named by A", role="analyst", password=PASSWORD
    )
    in_b = await _add(client, tenant_b, email=email, full_name="Named by B", role="viewer")
    assert in_b["id"] != in_a["id"]

    renamed = await client.patch(
        f"{API}/users/{in_b['id']}",
        headers=tenant_b.headers,
        json={"full_name": "Renamed by B", "is_active": False},
    )
    assert renamed.status_code == 200, renamed.text
    assert_problem(
        await client.patch(
            f"{API}/users/{in_a['id']}", headers=tenant_b.headers, json={"full_name": "x"}
        ),
        404,
    )
    seen_by_a = await client.get(f"{API}/users/{in_a['id']}", headers=tenant_a.headers)
    assert (seen_by_a.json()["full_name"], seen_by_a.json()["is_active"]) == ("Named by A", True)
    assert (await _sign_in(client, email, PASSWORD)).status_code == 200


async def test_another_tenants_account_for_your_email_never_blocks_or_names_itself(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    await _add(
        client,
        tenant_b,
        email=tenant_a.admin_email,
        full_name="Planted by B",
        role="org_admin",
        password=PLANTED,
    )
    response = await _sign_in(client, tenant_a.admin_email, PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["org_id"] == str(tenant_a.org_id)
    failed = await _sign_in(client, tenant_a.admin_email, "a wrong password entirely")
    assert_problem(failed, 401, "invalid_credentials")
    assert tenant_b.slug not in failed.text
    assert str(tenant_b.org_id) not in failed.text
    me = await client.get(
        f"{API}/me",
        headers={"Authorization": f"Bearer {await login(client, tenant_a.admin_email)}"},
    )
    assert tenant_b.slug not in me.text
