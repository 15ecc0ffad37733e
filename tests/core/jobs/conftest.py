"""Job tests need real commits: a worker reads the queue over its own connections."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from procrastinate.tasks import Task
from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import Tenant
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.jobs import JobRecord, defer
from touchstone.core.jobs.worker import run_worker
from touchstone.core.permissions import Role, permissions_for
from touchstone.core.postgres import DatabaseUrls


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


def principal_of(tenant: Tenant) -> Principal:
    return Principal(
        kind="user",
        id=uuid.uuid4(),
        org_id=tenant.org_id,
        role=Role.ORG_ADMIN,
        branch_id=None,
        permissions=permissions_for(Role.ORG_ADMIN),
    )


@dataclass
class Jobs:
    """Defer, run and read jobs of one committed tenant (the long-hand of every test here)."""

    committed: Database
    tenant: Tenant
    client: httpx.AsyncClient
    settings: Settings
    urls: DatabaseUrls

    async def defer(self, task: Task[Any, Any, Any], **arguments: Any) -> JobRecord:
        async with self.committed.transaction(org_id=self.tenant.org_id) as session:
            return await defer(session, principal_of(self.tenant), task, **arguments)

    async def drain(self) -> None:
        await drain(self.settings, self.urls)

    async def status(self, record: JobRecord) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/jobs/{record.id}", headers=self.tenant.headers)
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def jobs(
    committed: Database,
    tenant: Tenant,
    live_client: httpx.AsyncClient,
    settings: Settings,
    database_urls: DatabaseUrls,
) -> Jobs:
    return Jobs(committed, tenant, live_client, settings, database_urls)
