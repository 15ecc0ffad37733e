"""The one-round-trip read path (`core.reads`): same tenancy and auth as the ORM path."""

from __future__ import annotations

import asyncio
from datetime import UTC

import httpx
import pytest
from psycopg_pool import PoolTimeout
from sqlalchemy import bindparam, text

from tests.conftest import Tenant, add_member, assert_left_clean, assert_problem
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.pagination import page_queries
from touchstone.core.permissions import Role
from touchstone.core.postgres import DatabaseUrls
from touchstone.core.reads import _PREPARED
from touchstone.identity.models import User
from touchstone.identity.repository import members_query
from touchstone.identity.schemas import MemberOut
from touchstone.main import create_app

API = "/api/v1"


async def test_read_leaves_the_pooled_connection_clean(
    database_urls: DatabaseUrls, settings: Settings, tenant: Tenant
) -> None:
    """On a one-connection pool the next user of the connection sees no tenant and no open
    transaction, after both a served read and a refused one."""
    pooled = Database(
        database_urls.runtime,
        settings.model_copy(update={"database_pool_size": 1, "database_max_overflow": 0}),
    )
    app = create_app(settings, database=pooled)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            listed = await client.get(f"{API}/users", headers=tenant.headers)
            assert listed.status_code == 200
            assert listed.json()["total"] == 1
            refused = await client.get(f"{API}/users", headers={"X-API-Key": "tsk_abc_wrong"})
            assert refused.status_code == 401
        await assert_left_clean(pooled, "memberships")
    finally:
        await pooled.dispose()


async def test_both_paths_read_timestamps_in_utc(
    database_urls: DatabaseUrls, settings: Settings
) -> None:
    """Whatever the server's zone, sessions run in UTC: responses stay the same, and psycopg
    builds datetimes with the cheap `timezone.utc`, never a named zone."""
    pooled = Database(database_urls.runtime, settings)
    try:
        async with pooled.direct_connection() as connection:
            cursor = await connection.execute("select now(), current_setting('TimeZone')")
            stamp, zone = await cursor.fetchone() or (None, None)
            assert (stamp.tzinfo, zone) == (UTC, "UTC")
        async with pooled.transaction() as session:
            row = (await session.execute(text("select now(), current_setting('TimeZone')"))).one()
            assert (row[0].tzinfo, row[1]) == (UTC, "UTC")
    finally:
        await pooled.dispose()


async def test_pooled_reads_prepare_each_query_once_and_survive_a_forgotten_one(
    database_urls: DatabaseUrls, settings: Settings, tenant: Tenant
) -> None:
    """On pooled connections each query shape is PREPAREd once and then EXECUTEd; a statement
    the connection already holds (its record lost) is taken as prepared, not an error."""
    pooled = Database(database_urls.runtime, settings.model_copy(update={"database_pool_size": 1}))
    app = create_app(settings, database=pooled)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def emails(**params: str) -> list[str]:
                listed = await client.get(f"{API}/users", headers=tenant.headers, params=params)
                assert listed.status_code == 200, listed.text
                return [item["email"] for item in listed.json()["items"]]

            first = await emails()
            assert first == [tenant.admin_email]
            assert await emails() == first  # EXECUTE of what the first read prepared
            assert await emails(q="admin", sort="-email") == first  # another shape
            beyond = await client.get(f"{API}/users?offset=5", headers=tenant.headers)
            assert (beyond.json()["items"], beyond.json()["total"]) == ([], 1)
            async with pooled.direct_connection() as connection:
                cursor = await connection.execute("select count(*) from pg_prepared_statements")
                # two page shapes, each with its count
                assert (await cursor.fetchone()) == (4,)
                _PREPARED.pop(connection)
            assert await emails() == first
    finally:
        await pooled.dispose()


async def test_concurrent_reads_beyond_the_pool_size_all_finish(
    live_client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    """A read holds one connection per request: more requests than connections queue for
    the pool instead of deadlocking (a request once held an ORM session and a read at once)."""
    pool = settings.database_pool_size + settings.database_max_overflow

    async def one() -> int:
        response = await live_client.get(f"{API}/users?limit=5", headers=tenant.headers)
        return response.status_code

    statuses = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(2 * pool))), 60)
    assert statuses == [200] * (2 * pool)


async def test_a_read_beyond_the_pool_waits_for_a_slot_within_the_pool_timeout(
    database_urls: DatabaseUrls, settings: Settings
) -> None:
    """Reads queue for a slot in front of the pool; the wait ends in the pool's own timeout
    (a 503), and every slot comes back, after an error too."""
    pooled = Database(database_urls.runtime, settings.model_copy(update={"database_pool_size": 1}))
    pooled.direct_pool.timeout = 0.2
    try:
        async with pooled.direct_connection():
            with pytest.raises(PoolTimeout):
                async with pooled.direct_connection():
                    pass
        with pytest.raises(RuntimeError):
            async with pooled.direct_connection():
                raise RuntimeError
        async with pooled.direct_connection() as connection:
            assert await (await connection.execute("select 1")).fetchone() == (1,)
    finally:
        await pooled.dispose()


@pytest.mark.parametrize("sort", ["email", "-created_at", "role", "-full_name"])
async def test_every_sort_compiles_and_orders(
    client: httpx.AsyncClient, tenant_a: Tenant, sort: str
) -> None:
    for number in range(3):
        email, name = f"s{number}@sort.example.com", f"S {number}"
        body = {"email": email, "full_name": name, "role": "viewer"}
        assert (await client.post(f"{API}/users", headers=tenant_a.headers, json=body)).is_success
    listed = await client.get(f"{API}/users", headers=tenant_a.headers, params={"sort": sort})
    page = listed.json()
    key = sort.removeprefix("-")
    values = [item[key] for item in page["items"]]
    assert values == sorted(values, reverse=sort.startswith("-"))
    assert page["total"] == 4


async def test_a_moved_member_or_an_ended_session_shows_on_the_very_next_read(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """Reads are planned for the principal last seen for a credential; the database's answer
    decides. A move to another branch changes the next page; a role change (which ends the
    member's sessions) refuses the next read."""
    north, south = [
        (
            await client.post(
                f"{API}/branches", headers=tenant_a.headers, json={"name": name, "code": name}
            )
        ).json()["id"]
        for name in ("North", "South")
    ]
    user_id, manager = await add_member(client, tenant_a, Role.BRANCH_MANAGER, north)
    await add_member(client, tenant_a, Role.APPRAISER, south)

    async def emails() -> set[str]:
        listed = await client.get(f"{API}/users", headers=manager)
        assert listed.status_code == 200, listed.text
        return {item["email"].split("-")[0] for item in listed.json()["items"]}

    assert await emails() == {"branch_manager"}
    assert await emails() == {"branch_manager"}  # planned from the hint, confirmed
    moved = await client.patch(
        f"{API}/users/{user_id}", headers=tenant_a.headers, json={"branch_id": south}
    )
    assert moved.status_code == 200, moved.text
    assert await emails() == {"branch_manager", "appraiser"}
    promoted = await client.patch(
        f"{API}/users/{user_id}", headers=tenant_a.headers, json={"role": "org_admin"}
    )
    assert promoted.status_code == 200, promoted.text
    assert (await client.get(f"{API}/users", headers=manager)).status_code == 401


async def test_a_read_route_answers_as_any_route(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """A read's one dependency reads the credential headers itself: the rate-limit headers,
    the 422 for a bad query parameter and the 401 without a credential are as on any route."""
    listed = await client.get(f"{API}/users", headers=tenant_a.headers, params={"limit": 1})
    assert listed.status_code == 200
    assert listed.json()["limit"] == 1
    assert listed.headers["ratelimit-policy"].startswith('"default"')
    bad = await client.get(f"{API}/users", headers=tenant_a.headers, params={"limit": 0})
    body = assert_problem(bad, 422, "invalid_input")
    assert body["invalid_params"][0]["name"] == "limit"
    assert body["invalid_params"][0]["in"] == "query"
    assert_problem(await client.get(f"{API}/users"), 401)
    # The query string is read as FastAPI reads it: the last of a repeated name wins, and a
    # blank value is a value (so it fails validation rather than taking the default).
    repeated = await client.get(f"{API}/users?limit=0&limit=2", headers=tenant_a.headers)
    assert repeated.json()["limit"] == 2
    assert_problem(await client.get(f"{API}/users?limit=", headers=tenant_a.headers), 422)


def test_a_page_must_select_its_item_fields() -> None:
    """`page_response` serialises rows as they come, so the query is checked against the
    item model when it is compiled."""
    members, order = members_query(bindparam("org_id")), [User.email.asc()]
    page_queries(members, order, item=MemberOut)
    with pytest.raises(TypeError, match="MemberOut"):
        page_queries(members.add_columns(User.is_platform_admin), order, item=MemberOut)
