"""A deleted batch's files go by core's removal job once the rows are gone, and that job
is seen only by who may read the files it removes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bench.generators.statements import generate_statement
from sqlalchemy import select

from tests.conftest import Tenant, add_member, assert_problem
from tests.core.jobs.conftest import drain
from tests.statements.test_api import pdf, upload
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.jobs import JobRecord
from touchstone.core.permissions import Role
from touchstone.core.postgres import DatabaseUrls
from touchstone.core.storage import get_storage
from touchstone.core.storage.removal import delete_stored_files
from touchstone.statements.models import Statement


@pytest.fixture
def run_jobs(settings: Settings, database_urls: DatabaseUrls) -> Callable[[], Any]:
    async def run() -> None:
        await drain(settings, database_urls)

    return run


async def test_a_deleted_batchs_files_go_after_the_commit(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    run_jobs: Callable[[], Any],
) -> None:
    statement = generate_statement("ruled_uk", seed=41)
    response = await upload(live_client, tenant, [pdf("a.pdf", statement.pdf)])
    batch = response.json()
    await run_jobs()
    done = await live_client.get(f"/api/v1/batches/{batch['id']}", headers=tenant.headers)
    assert done.json()["status"] == "done"
    async with committed.transaction(org_id=tenant.org_id) as session:
        row = await session.get_one(Statement, uuid.UUID(batch["statements"][0]["id"]))
        job = await session.get_one(JobRecord, uuid.UUID(response.headers["Location"][-36:]))
    keys = [row.storage_key, job.result["report_key"]]
    storage = get_storage(settings)

    deleted = await live_client.delete(f"/api/v1/batches/{batch['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert all([await storage.exists(tenant.org_id, key) for key in keys])  # until the job
    await run_jobs()
    assert not any([await storage.exists(tenant.org_id, key) for key in keys])

    async with committed.transaction(org_id=tenant.org_id) as session:
        (removal,) = await session.scalars(
            select(JobRecord).where(JobRecord.task == delete_stored_files.name)
        )
    path = f"/api/v1/jobs/{removal.id}"
    _, analyst = await add_member(live_client, tenant, Role.ANALYST)
    seen = await live_client.get(path, headers=analyst)
    assert (seen.json()["status"], seen.json()["result"]) == ("succeeded", {"deleted": 2})
    _, teacher = await add_member(live_client, tenant, Role.TEACHER)  # no statements:read
    assert_problem(await live_client.get(path, headers=teacher), 404)
