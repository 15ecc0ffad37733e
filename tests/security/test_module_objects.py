"""Generic routes (job status, file downloads) ask for the owning module's permission.

Issue 13, §7: a teacher or an appraiser (no `statements:read`) read a statement batch's
job, took `report_key` from its result and downloaded the workbook from `/files/`. The
generic routes now ask the module that owns the job or the file, and an appraiser of one
branch cannot open another branch's evidence by its key either.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bench.generators.statements import generate_statement

from tests.appraisal.conftest import RING, Bank, make_bank
from tests.conftest import Tenant, add_member, assert_problem
from tests.core.jobs.conftest import drain
from tests.security.world import PNG
from tests.statements.test_api import pdf, upload
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.jobs import JobRecord
from touchstone.core.permissions import Role
from touchstone.core.postgres import DatabaseUrls
from touchstone.statements.models import Statement

API = "/api/v1"


@pytest.fixture
def run_jobs(settings: Settings, database_urls: DatabaseUrls) -> Callable[[], Any]:
    async def run() -> None:
        await drain(settings, database_urls)

    return run


@pytest.fixture
async def bank(client: httpx.AsyncClient, tenant_a: Tenant) -> Bank:
    return await make_bank(client, tenant_a)


async def test_a_batch_job_and_its_files_need_statements_read(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    run_jobs: Callable[[], Any],
) -> None:
    statement = generate_statement("ruled_uk", seed=31)
    response = await upload(live_client, tenant, [pdf("a.pdf", statement.pdf)])
    assert response.status_code == 202, response.text
    job_path = response.headers["Location"]
    await run_jobs()
    done = await live_client.get(job_path, headers=tenant.headers)
    assert done.status_code == 200
    report_key = done.json()["result"]["report_key"]
    async with committed.transaction(org_id=tenant.org_id) as session:
        pdf_key = (
            await session.get_one(Statement, uuid.UUID(response.json()["statements"][0]["id"]))
        ).storage_key

    for role in (Role.TEACHER, Role.APPRAISER, Role.EDITOR):
        _, headers = await add_member(live_client, tenant, role)
        assert_problem(await live_client.get(job_path, headers=headers), 404)
        assert_problem(await live_client.post(f"{job_path}/cancel", headers=headers), 404)
        for key in (report_key, pdf_key):
            assert_problem(await live_client.get(f"{API}/files/{key}", headers=headers), 404)

    for role in (Role.VIEWER, Role.ANALYST):  # both hold statements:read
        _, headers = await add_member(live_client, tenant, role)
        assert (await live_client.get(job_path, headers=headers)).status_code == 200
        for key in (report_key, pdf_key):
            assert (await live_client.get(f"{API}/files/{key}", headers=headers)).status_code == 200


def _key_of(download_url: str) -> str:
    return download_url.split(f"{API}/files/", 1)[1].split("?", 1)[0]


async def test_evidence_is_readable_only_in_its_branch(bank: Bank) -> None:
    appraisal_id = await bank.new_appraisal(RING)
    (item,) = await bank.items(appraisal_id)
    photo = await bank.client.post(
        f"{API}/appraisals/{appraisal_id}/items/{item['id']}/photos",
        headers=bank.appraiser.headers,
        files={"photo": ("ring.png", PNG, "image/png")},
    )
    assert photo.status_code == 201, photo.text
    path = f"{API}/files/{_key_of(photo.json()['download_url'])}"

    for allowed in (bank.appraiser.headers, bank.manager.headers, bank.admin):
        assert (await bank.client.get(path, headers=allowed)).status_code == 200
    assert_problem(await bank.client.get(path, headers=bank.other_appraiser.headers), 404)
    _, teacher = await add_member(bank.client, bank.tenant, Role.TEACHER)
    assert_problem(await bank.client.get(path, headers=teacher), 404)


async def test_a_customer_photo_needs_customers_read(bank: Bank, database: Database) -> None:
    response = await bank.client.put(
        f"{API}/customers/{bank.customer_id}/photo",
        headers=bank.appraiser.headers,
        files={"photo": ("face.png", PNG, "image/png")},
    )
    assert response.status_code == 200, response.text
    from touchstone.appraisal.models import Customer  # a test may look inside the module

    async with database.transaction(org_id=bank.tenant.org_id) as session:
        key = (await session.get_one(Customer, uuid.UUID(bank.customer_id))).photo_key
    path = f"{API}/files/{key}"
    assert (await bank.client.get(path, headers=bank.other_appraiser.headers)).status_code == 200
    _, analyst = await add_member(bank.client, bank.tenant, Role.ANALYST)
    assert_problem(await bank.client.get(path, headers=analyst), 404)


async def test_a_job_of_an_unregistered_kind_is_refused(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    """Core cannot know every module's jobs: a kind no module registered is nobody's."""
    record = JobRecord(
        id=uuid.uuid4(),
        org_id=tenant_a.org_id,
        task="touchstone.nowhere.unknown_task",
        queue="default",
        status="queued",
        progress=0,
        attempts=0,
    )
    async with database.transaction(org_id=tenant_a.org_id) as session:
        session.add(record)
    assert_problem(await client.get(f"{API}/jobs/{record.id}", headers=tenant_a.headers), 404)
