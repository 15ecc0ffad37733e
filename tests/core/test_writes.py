"""The two-round-trip write path (`core.writes`): the caller is checked before any change,
a refused or conflicting write keeps nothing, and a pooled connection comes back clean."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from tests.conftest import Tenant, add_member, assert_left_clean, assert_problem
from touchstone.core.audit import AuditEvent
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.permissions import Role
from touchstone.core.postgres import DatabaseUrls
from touchstone.identity.models import Branch
from touchstone.main import create_app

API = "/api/v1"


async def _counts(database: Database, tenant: Tenant) -> tuple[int, int]:
    """Branches and `branch.created` events of the tenant."""
    async with database.transaction(org_id=tenant.org_id) as session:
        branches = await session.scalar(select(func.count()).select_from(Branch))
        events = await session.scalar(
            select(func.count()).where(AuditEvent.action == "branch.created")
        )
    return branches or 0, events or 0


async def test_a_created_row_comes_with_its_audit_event_and_its_response(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    created = await client.post(
        f"{API}/branches",
        headers=tenant_a.headers | {"X-Request-ID": "write-path-1"},
        json={"name": "Main", "code": "MAIN"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    fetched = await client.get(f"{API}/branches/{body['id']}", headers=tenant_a.headers)
    assert fetched.json() == body
    async with database.transaction(org_id=tenant_a.org_id) as session:
        event = (
            await session.execute(select(AuditEvent).where(AuditEvent.object_id == body["id"]))
        ).scalar_one()
    assert (event.action, event.request_id) == ("branch.created", "write-path-1")
    assert event.changes == {"name": "Main", "code": "MAIN"}
    assert event.org_id == tenant_a.org_id


async def test_a_unique_violation_is_a_409_and_keeps_nothing(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    body = {"name": "Main", "code": "MAIN"}
    assert (await client.post(f"{API}/branches", headers=tenant_a.headers, json=body)).is_success
    twin = await client.post(f"{API}/branches", headers=tenant_a.headers, json=body)
    assert_problem(twin, 409, "conflict")
    assert "MAIN" in twin.json()["detail"]
    assert await _counts(database, tenant_a) == (1, 1)


async def test_the_caller_is_refused_before_any_change(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    body = {"name": "Main", "code": "MAIN"}
    assert_problem(await client.post(f"{API}/branches", headers=viewer, json=body), 403)
    dead = {"Authorization": "Bearer not-a-token"}
    assert_problem(await client.post(f"{API}/branches", headers=dead, json=body), 401)
    revoked = {"X-API-Key": "tsk_abcdefgh_" + "x" * 40}
    assert_problem(await client.post(f"{API}/branches", headers=revoked, json=body), 401)
    assert await _counts(database, tenant_a) == (0, 0)


async def test_a_pooled_connection_comes_back_idle_and_without_a_tenant(
    database_urls: DatabaseUrls, settings: Settings, tenant: Tenant
) -> None:
    """On a one-connection pool, after a write, a conflicting one and a refused one."""
    pooled = Database(
        database_urls.runtime,
        settings.model_copy(update={"database_pool_size": 1, "database_max_overflow": 0}),
    )
    app = create_app(settings, database=pooled)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    body = {"name": "Pool", "code": "POOL"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            made = await client.post(f"{API}/branches", headers=tenant.headers, json=body)
            assert made.status_code == 201, made.text
            twin = await client.post(f"{API}/branches", headers=tenant.headers, json=body)
            assert twin.status_code == 409
            refused = await client.post(
                f"{API}/branches", headers={"X-API-Key": "tsk_abc_wrong"}, json=body
            )
            assert refused.status_code == 401
        await assert_left_clean(pooled, "branches")
    finally:
        await pooled.dispose()
