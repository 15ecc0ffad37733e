"""Job tests need real commits: a worker reads the queue over its own connections."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import PASSWORD, Tenant, login
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.jobs.worker import run_worker
from touchstone.core.postgres import DatabaseUrls
from touchstone.identity import service
from touchstone.identity.schemas import OrgCreate
from touchstone.main import create_app


@pytest.fixture
async def committed(database_urls: DatabaseUrls, settings: Settings) -> AsyncIterator[Database]:
    database = Database(database_urls.runtime, settings)
    yield database
    await database.dispose()


@pytest.fixture
async def live_client(settings: Settings, committed: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=committed)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def committed_tenant(
    committed: Database, settings: Settings, client: httpx.AsyncClient
) -> Tenant:
    slug = f"jobs-{uuid.uuid4().hex[:8]}"
    email = f"admin@{slug}.example.com"
    async with committed.transaction() as session:
        org, _ = await service.create_org(
            session,
            OrgCreate(name=slug, slug=slug, admin_email=email, admin_password=PASSWORD),
            None,
            settings,
        )
    return Tenant(org.id, slug, email, await login(client, email))


@pytest.fixture
async def tenant(committed: Database, settings: Settings, live_client: httpx.AsyncClient) -> Tenant:
    return await committed_tenant(committed, settings, live_client)


async def drain(settings: Settings, database_urls: DatabaseUrls) -> None:
    """Run a worker in-process until no job is due (retries included)."""
    due = text(
        "select count(*) from procrastinate_jobs where status in ('todo', 'doing') "
        "and (scheduled_at is null or scheduled_at <= now())"
    )
    engine = create_async_engine(database_urls.runtime, poolclass=NullPool)
    try:
        for _ in range(20):
            await run_worker(settings, database_urls.runtime, concurrency=4, wait=False)
            async with engine.connect() as connection:
                if (await connection.execute(due)).scalar_one() == 0:
                    return
        raise AssertionError("jobs kept coming back")
    finally:
        await engine.dispose()
