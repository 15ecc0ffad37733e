"""Helpers for the AR content tests: companies, projects, the outside markers and videos."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import select, text

from tests.conftest import ROOT, Tenant, make_tenant
from tests.core.jobs.conftest import drain
from touchstone.core.audit import AuditEvent
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.postgres import DatabaseUrls

API = "/api/v1/arcontent"
AR = ROOT.parent / "shared" / "corpora" / "ar"
needs_corpus = pytest.mark.skipif(
    not AR.is_dir(), reason="../shared/corpora/ar is not beside the checkout"
)
MARKERS = ("mindar/card.png", "mindar/pictarize.jpg", "arjs/nft/pinball.jpg")


def corpus(relative: str) -> bytes:
    return (AR / relative).read_bytes()


def png(image: np.ndarray[Any, Any]) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def blank() -> bytes:
    return png(np.full((600, 600, 3), 200, np.uint8))


def flattened() -> bytes:
    """The card marker with its contrast cut to a fifth: a washed-out print."""
    grey = cv2.imdecode(np.frombuffer(corpus("mindar/card.png"), np.uint8), cv2.IMREAD_GRAYSCALE)
    return png((128 + (grey.astype(np.float32) - 128) * 0.2).astype(np.uint8))


async def make_company(
    database: Database, settings: Settings, client: httpx.AsyncClient, name: str
) -> Tenant:
    tenant = await make_tenant(database, settings, client, name)
    async with database.transaction(org_id=tenant.org_id) as session:
        await session.execute(
            text("update orgs set kind = 'company' where id = :id"), {"id": tenant.org_id}
        )
    return tenant


@pytest.fixture
async def company(database: Database, settings: Settings, client: httpx.AsyncClient) -> Tenant:
    return await make_company(database, settings, client, "acme")


@pytest.fixture
async def other_company(
    database: Database, settings: Settings, client: httpx.AsyncClient
) -> Tenant:
    return await make_company(database, settings, client, "globex")


Jobs = Callable[[], Awaitable[None]]


@pytest.fixture
def run_jobs(settings: Settings, database_urls: DatabaseUrls) -> Jobs:
    """Run a worker in this process until no job is due."""

    async def run() -> None:
        await drain(settings, database_urls)

    return run


async def project(client: httpx.AsyncClient, tenant: Tenant, name: str = "Spring catalogue") -> str:
    made = await client.post(f"{API}/projects", headers=tenant.headers, json={"name": name})
    assert made.status_code == 201, made.text
    project_id: str = made.json()["id"]
    return project_id


async def content(client: httpx.AsyncClient, tenant: Tenant, project_id: str) -> str:
    made = await client.post(
        f"{API}/projects/{project_id}/contents", headers=tenant.headers, json={"title": "Poster"}
    )
    assert made.status_code == 201, made.text
    content_id: str = made.json()["id"]
    return content_id


async def upload(
    client: httpx.AsyncClient, tenant: Tenant, content_id: str, part: str, data: bytes
) -> httpx.Response:
    return await client.put(
        f"{API}/contents/{content_id}/{part}",
        headers=tenant.headers,
        files={"file": ("upload.bin", data, "application/octet-stream")},
    )


async def audit_actions(database: Database, tenant: Tenant, object_id: str) -> list[str]:
    async with database.transaction(org_id=tenant.org_id) as session:
        rows = await session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.object_id == object_id)
            .order_by(AuditEvent.occurred_at)
        )
        return list(rows)
