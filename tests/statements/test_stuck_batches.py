"""No batch stays `processing` forever (issue 13, §7).

A PDF whose page tree loops passed intake (PDFium counts one page), then every attempt to
read it failed with `PdfiumError: Failed to load page`: six retries over six minutes, and
the batch and its statement stayed `processing` for good. Intake now refuses it; a file that
got in anyway fails its own statement; and a batch job that ends for good for any reason
(permanent error, last attempt, cancelled) leaves the batch and statements in a final state
that says why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bench.generators.statements import generate_statement
from sqlalchemy import select, update

from tests.conftest import Tenant, assert_problem
from tests.core.jobs.conftest import drain
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.postgres import DatabaseUrls
from touchstone.core.storage import get_storage
from touchstone.statements.extraction import ExtractionLimits, inspect_pdf
from touchstone.statements.models import Batch, Statement
from touchstone.statements.processing import one_chunk

API = "/api/v1"
CATALOG = "<< /Type /Catalog /Pages 2 0 R >>"
PAGE = "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"
LOOPS = {
    # /Pages whose only kid is itself
    "self": [CATALOG, "<< /Type /Pages /Kids [2 0 R] /Count 1 >>"],
    # /Pages -> /Pages -> back to the root
    "back-to-root": [
        CATALOG,
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",
    ],
    # a real first page, then the root again: page 2 of 2 is the loop
    "after-a-page": [CATALOG, "<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>", PAGE],
}


def pdf_of(objects: list[str]) -> bytes:
    """A PDF written by hand: the objects, a correct xref table and trailer."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@pytest.fixture
def run_jobs(settings: Settings, database_urls: DatabaseUrls) -> Callable[[], Any]:
    async def run() -> None:
        await drain(settings, database_urls)

    return run


async def _upload(client: httpx.AsyncClient, tenant: Tenant, data: bytes) -> httpx.Response:
    files = [("files", ("statement.pdf", data, "application/pdf"))]
    return await client.post(f"{API}/batches", headers=tenant.headers, files=files)


def test_a_well_formed_pdf_still_passes_intake() -> None:
    assert (
        inspect_pdf(
            pdf_of([CATALOG, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", PAGE]),
            limits=ExtractionLimits(),
        ).pages
        == 1
    )


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_looping_page_tree_is_refused_at_intake(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, loop: str
) -> None:
    problem = assert_problem(await _upload(client, tenant_a, pdf_of(LOOPS[loop])), 422)
    assert problem["code"] == "corrupt_pdf"
    assert "page tree" in problem["detail"]
    async with database.transaction(org_id=tenant_a.org_id) as session:
        assert (await session.execute(select(Batch))).first() is None


class Batches:
    def __init__(
        self, client: httpx.AsyncClient, tenant: Tenant, committed: Database, settings: Settings
    ) -> None:
        self.client, self.tenant, self.committed = client, tenant, committed
        self.storage = get_storage(settings)

    async def upload(self) -> tuple[dict[str, Any], str]:
        response = await _upload(self.client, self.tenant, generate_statement("ruled_uk").pdf)
        assert response.status_code == 202, response.text
        return response.json(), response.headers["Location"]

    async def replace_file(self, statement_id: str, data: bytes | None) -> None:
        """What an older release accepted (or a file lost from storage): `None` deletes it."""
        async with self.committed.transaction(org_id=self.tenant.org_id) as session:
            statement = await session.get_one(Statement, uuid.UUID(statement_id))
            await self.storage.delete(self.tenant.org_id, statement.storage_key)
            if data is not None:
                stored = await self.storage.put(
                    self.tenant.org_id, one_chunk(data), kind="statement"
                )
                await session.execute(
                    update(Statement)
                    .where(Statement.id == statement.id)
                    .values(storage_key=stored.key)
                )

    async def get(self, path: str) -> dict[str, Any]:
        response = await self.client.get(path, headers=self.tenant.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def batches(
    live_client: httpx.AsyncClient, tenant: Tenant, committed: Database, settings: Settings
) -> Batches:
    return Batches(live_client, tenant, committed, settings)


async def test_a_looping_file_that_got_in_fails_its_statement_once(
    batches: Batches, run_jobs: Callable[[], Any]
) -> None:
    batch, job_path = await batches.upload()
    statement_id = batch["statements"][0]["id"]
    await batches.replace_file(statement_id, pdf_of(LOOPS["after-a-page"]))
    await run_jobs()

    job = await batches.get(job_path)
    assert (job["status"], job["attempts"]) == ("succeeded", 1), "read once, not retried"
    assert job["result"]["status"] == "completed_with_errors"
    done = await batches.get(f"{API}/batches/{batch['id']}")
    assert done["status"] == "completed_with_errors"
    (statement,) = done["statements"]
    assert (statement["status"], statement["error_code"]) == ("failed", "corrupt_pdf")
    assert "page tree" in statement["error_detail"]


async def test_a_permanent_error_ends_the_batch_failed_at_once(
    batches: Batches, run_jobs: Callable[[], Any]
) -> None:
    batch, job_path = await batches.upload()
    await batches.replace_file(batch["statements"][0]["id"], None)
    await run_jobs()

    job = await batches.get(job_path)
    assert (job["status"], job["attempts"], job["error"]["code"]) == ("failed", 1, "not_found")
    failed = await batches.get(f"{API}/batches/{batch['id']}")
    assert (failed["status"], failed["error_code"]) == ("failed", "not_found")
    assert failed["finished_at"] is not None
    (statement,) = failed["statements"]
    assert (statement["status"], statement["error_code"]) == ("failed", "not_found")


async def test_a_cancelled_batch_job_ends_its_batch(
    batches: Batches, run_jobs: Callable[[], Any]
) -> None:
    batch, job_path = await batches.upload()
    cancelled = await batches.client.post(f"{job_path}/cancel", headers=batches.tenant.headers)
    assert cancelled.status_code == 202, cancelled.text
    await run_jobs()

    ended = await batches.get(f"{API}/batches/{batch['id']}")
    assert (ended["status"], ended["error_code"]) == ("failed", "job_cancelled")
    assert ended["statements"][0]["status"] == "failed"
    deleted = await batches.client.delete(
        f"{API}/batches/{batch['id']}", headers=batches.tenant.headers
    )
    assert deleted.status_code == 204, "a batch that ended can be deleted"
