"""Helpers for the research API tests: sources added and extracted through the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tests.core.jobs.conftest import drain
from touchstone.core.config import Settings
from touchstone.core.postgres import DatabaseUrls

API = "/api/v1/research"
DOCS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "docs"
Jobs = Callable[[], Awaitable[None]]
needs_corpus = pytest.mark.skipif(
    not DOCS.is_dir(), reason="../shared/corpora/docs is not beside the checkout"
)


@pytest.fixture
def run_jobs(settings: Settings, database_urls: DatabaseUrls) -> Jobs:
    """Run a worker in this process until no job is due."""

    async def run() -> None:
        await drain(settings, database_urls)

    return run


async def upload(
    client: httpx.AsyncClient, tenant: Tenant, name: str, data: bytes, **form: str
) -> httpx.Response:
    return await client.post(
        f"{API}/sources",
        headers=tenant.headers,
        files={"file": (name, data, "application/octet-stream")},
        data=form,
    )


async def added(
    client: httpx.AsyncClient, tenant: Tenant, name: str, data: bytes, run_jobs: Jobs
) -> dict[str, Any]:
    """Upload a source and run its extraction; the source as it then reads."""
    sent = await upload(client, tenant, name, data)
    assert sent.status_code == 202, sent.text
    await run_jobs()
    read = await client.get(f"{API}/sources/{sent.json()['id']}", headers=tenant.headers)
    body: dict[str, Any] = read.json()
    assert body["status"] == "ready", body
    return body
