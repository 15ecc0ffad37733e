"""Helpers for the attendance API tests: people, consent, corpus photos."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from bench.faces import FACES, available

from tests.conftest import Tenant
from tests.core.jobs.conftest import drain
from touchstone.core.config import Settings
from touchstone.core.postgres import DatabaseUrls

API = "/api/v1/attendance"
needs_corpus = pytest.mark.skipif(
    not available(), reason="../shared/corpora/faces is not beside the checkout"
)


def photo(relative: str) -> bytes:
    return (FACES / relative).read_bytes()


def jpeg(image: np.ndarray[Any, Any]) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


def side_by_side(*relative: str, height: int = 500) -> bytes:
    """Several corpus photos in one frame: a small "class photo" of known people."""
    images = []
    for name in relative:
        image = cv2.imdecode(np.frombuffer(photo(name), np.uint8), cv2.IMREAD_COLOR)
        scale = height / image.shape[0]
        images.append(cv2.resize(image, (round(image.shape[1] * scale), height)))
    return jpeg(np.hstack(images))


async def person(
    client: httpx.AsyncClient, tenant: Tenant, code: str, *, consent: bool = True
) -> str:
    made = await client.post(
        f"{API}/people", headers=tenant.headers, json={"code": code, "full_name": f"Student {code}"}
    )
    assert made.status_code == 201, made.text
    person_id: str = made.json()["id"]
    if consent:
        given = await client.post(
            f"{API}/people/{person_id}/consents",
            headers=tenant.headers,
            json={"given_by": "Parent of " + code, "purpose": "attendance by face recognition"},
        )
        assert given.status_code == 201, given.text
    return person_id


async def enrol(
    client: httpx.AsyncClient, tenant: Tenant, person_id: str, data: bytes
) -> httpx.Response:
    return await client.post(
        f"{API}/people/{person_id}/faces",
        headers=tenant.headers,
        files={"photo": ("face.jpg", data, "image/jpeg")},
    )


@pytest.fixture
def run_jobs(settings: Settings, database_urls: DatabaseUrls) -> Callable[[], Awaitable[None]]:
    """Run a worker in this process until no job is due."""

    async def run() -> None:
        await drain(settings, database_urls)

    return run


async def mark_photo(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_id: str,
    data: bytes,
    run_jobs: Callable[[], Awaitable[None]],
) -> dict[str, Any]:
    """Mark a session from a class photo (202 and a job), run the job; the job as finished."""
    queued = await client.post(
        f"{API}/sessions/{session_id}/photos",
        headers=tenant.headers,
        files={"photo": ("class.jpg", data, "image/jpeg")},
    )
    assert queued.status_code == 202, queued.text
    assert queued.headers["Location"] == f"/api/v1/jobs/{queued.json()['id']}"
    await run_jobs()
    finished = await client.get(queued.headers["Location"], headers=tenant.headers)
    body: dict[str, Any] = finished.json()
    assert body["status"] == "succeeded", body
    return body
