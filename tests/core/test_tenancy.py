"""Row-level security really isolates tenants, whatever the application code does."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import PASSWORD, Tenant
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.postgres import DatabaseUrls
from touchstone.identity import service
from touchstone.identity.schemas import OrgCreate

TENANT_TABLES_SQL = """
    select c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped
    where n.nspname = 'public' and c.relkind in ('r', 'p')
"""


async def test_every_tenant_table_forces_rls_and_runtime_role_cannot_bypass(
    connection: AsyncConnection,
) -> None:
    tables = (await connection.execute(text(TENANT_TABLES_SQL))).all()
    assert len(tables) >= 7
    me = (
        await connection.execute(
            text(
                "select current_user, rolsuper, rolbypassrls from pg_roles "
                "where rolname = current_user"
            )
        )
    ).one()
    assert me.rolsuper is False
    assert me.rolbypassrls is False
    for name, enabled, forced, owner in tables:
        assert enabled, f"{name} lacks ENABLE ROW LEVEL SECURITY"
        assert forced, f"{name} lacks FORCE ROW LEVEL SECURITY"
        assert owner != me.current_user, f"the runtime role owns {name}"
        policies = (
            await connection.execute(
                text("select count(*) from pg_policies where tablename = :t"), {"t": name}
            )
        ).scalar_one()
        assert policies >= 1, f"{name} has no policy"


async def test_runtime_role_cannot_switch_rls_off(connection: AsyncConnection) -> None:
    for statement in (
        "set local row_security = off; select * from memberships",
        "alter table memberships disable row level security",
    ):
        with pytest.raises(DBAPIError):
            async with connection.begin_nested():
                await connection.exec_driver_sql(statement)


async def _tenant_counts(
    database: Database, org_id: uuid.UUID | None
) -> dict[str, tuple[int, int]]:
    """Per tenant table: (rows visible, rows visible that belong to another org)."""
    counts = {}
    async with database.transaction(org_id=org_id) as session:
        tables = [row[0] for row in (await session.execute(text(TENANT_TABLES_SQL))).all()]
        for table in tables:
            visible, foreign = (
                await session.execute(
                    text(
                        f"select count(*), count(*) filter (where org_id is distinct from :org) "
                        f"from {table}"
                    ),
                    {"org": org_id},
                )
            ).one()
            counts[table] = (visible, foreign)
    return counts


async def test_raw_sql_with_tenant_a_sees_none_of_tenant_b(
    database: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    counts = await _tenant_counts(database, tenant_a.org_id)
    assert counts["memberships"][0] >= 1, "tenant A should see its own admin"
    assert counts["audit_events"][0] >= 1
    assert all(foreign == 0 for _, foreign in counts.values()), counts
    async with database.transaction(org_id=tenant_a.org_id) as session:
        emails = (await session.execute(text("select email from users"))).scalars().all()
        orgs = (await session.execute(text("select id from orgs"))).scalars().all()
    assert emails == [tenant_a.admin_email]
    assert orgs == [tenant_a.org_id]


async def test_no_tenant_sees_no_tenant_rows(
    database: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    counts = await _tenant_counts(database, None)
    assert all(visible == 0 for visible, _ in counts.values()), counts
    async with database.transaction() as session:
        assert (await session.execute(text("select count(*) from users"))).scalar_one() == 0
        assert (await session.execute(text("select count(*) from orgs"))).scalar_one() == 0


async def test_writing_into_another_tenant_is_refused(
    database: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    with pytest.raises(DBAPIError, match="row-level security"):
        async with database.transaction(org_id=tenant_a.org_id) as session:
            await session.execute(
                text(
                    "insert into branches (id, org_id, name, code, is_active, created_at) "
                    "values (gen_random_uuid(), :b, 'x', 'X', true, now())"
                ),
                {"b": tenant_b.org_id},
            )


async def test_pooled_connection_carries_no_tenant_to_the_next_request(
    database_urls: DatabaseUrls, settings: Settings
) -> None:
    """Real commits on a one-connection pool: every transaction reuses the same backend."""
    pooled = Database(
        database_urls.runtime,
        settings.model_copy(update={"database_pool_size": 1, "database_max_overflow": 0}),
    )
    try:
        org_ids = []
        for name in ("pool-a", "pool-b"):
            slug = f"{name}-{uuid.uuid4().hex[:8]}"
            async with pooled.transaction() as session:
                org, _ = await service.create_org(
                    session,
                    OrgCreate(
                        name=name,
                        slug=slug,
                        admin_email=f"admin@{slug}.example.com",
                        admin_password=PASSWORD,
                    ),
                    None,
                    settings,
                )
                org_ids.append(org.id)
        backends = set()
        for org_id, other in ((org_ids[0], org_ids[1]), (org_ids[1], org_ids[0])):
            async with pooled.transaction(org_id=org_id) as session:
                backends.add((await session.execute(text("select pg_backend_pid()"))).scalar())
                seen = (await session.execute(text("select org_id from memberships"))).scalars()
                assert set(seen) == {org_id}
                assert other not in set(seen)
            async with pooled.transaction() as session:
                backends.add((await session.execute(text("select pg_backend_pid()"))).scalar())
                setting = (
                    await session.execute(text("select current_setting('app.org_id', true)"))
                ).scalar()
                assert setting in ("", None)
                assert (
                    await session.execute(text("select count(*) from memberships"))
                ).scalar_one() == 0
        assert len(backends) == 1, "the test must have reused one pooled connection"

        with pytest.raises(RuntimeError):
            async with pooled.transaction(org_id=org_ids[0]):
                raise RuntimeError("request failed mid-transaction")
        async with pooled.transaction() as session:
            assert (
                await session.execute(text("select current_setting('app.org_id', true)"))
            ).scalar() in ("", None)
            assert (
                await session.execute(text("select count(*) from memberships"))
            ).scalar_one() == 0
    finally:
        await pooled.dispose()


GLOBAL_WRITABLE_SQL = """
    select n.nspname || '.' || c.relname
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and not c.relrowsecurity
      and n.nspname not in ('pg_catalog', 'information_schema')
      and (has_table_privilege(current_user, c.oid, 'INSERT')
           or has_table_privilege(current_user, c.oid, 'UPDATE')
           or has_table_privilege(current_user, c.oid, 'DELETE'))
    order by 1
"""
_QUEUE = "procrastinate's queue bookkeeping: no tenant data, nothing any API shows"
SHARED_TABLES = {
    "public.procrastinate_jobs": "job arguments are ids only and no lock or queueing lock "
    "derives from tenant input; a tenant sees its jobs through `jobs`, under RLS",
    "public.procrastinate_events": _QUEUE,
    "public.procrastinate_workers": _QUEUE,
    "public.procrastinate_periodic_defers": _QUEUE,
}
"""Tables the runtime role may write without row-level security, and why no tenant can
observe another's writes there. Anything else shared would need the same argument."""


async def test_every_table_the_runtime_role_writes_without_rls_is_argued_for(
    connection: AsyncConnection,
) -> None:
    shared = set((await connection.execute(text(GLOBAL_WRITABLE_SQL))).scalars())
    assert shared == set(SHARED_TABLES)
