"""Stored photos go only once the rows that named them are gone (core's removal job, run by
a real worker): a rolled-back deletion keeps both, a committed one removes both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.attendance.conftest import API, jpeg, person
from tests.conftest import Tenant
from tests.core.jobs.conftest import drain, principal_of
from touchstone.attendance import service
from touchstone.attendance.models import Face, Person
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.postgres import DatabaseUrls
from touchstone.core.storage import get_storage


class Interrupted(Exception):
    """Raised inside the transaction to make it roll back after the deletion."""


async def rolled_back(
    committed: Database, tenant: Tenant, deletion: Callable[[AsyncSession], Awaitable[object]]
) -> None:
    """Run `deletion` in a transaction that then fails (as a failed commit would)."""
    async with committed.transaction(org_id=tenant.org_id) as session:
        await deletion(session)
        raise Interrupted


async def stored_face(committed: Database, settings: Settings, tenant: Tenant, who: str) -> Face:
    """An enrolled face with a real stored photo (the row written directly: this is about
    files, not the face engine)."""
    storage = get_storage(settings)

    async def chunks() -> AsyncIterator[bytes]:
        yield jpeg(np.full((40, 40, 3), 128, np.uint8))

    stored = await storage.put(tenant.org_id, chunks(), kind=service.FACE_PHOTO_KIND)
    face = Face(
        id=uuid.uuid4(),
        org_id=tenant.org_id,
        person_id=uuid.UUID(who),
        embedding=[0.0] * 128,
        engine="test",
        photo_key=stored.key,
        photo_sha256=stored.sha256,
        quality={},
        enrolled_by=uuid.uuid4(),
    )
    async with committed.transaction(org_id=tenant.org_id) as session:
        session.add(face)
    return face


async def test_a_rolled_back_person_deletion_keeps_the_photos(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    database_urls: DatabaseUrls,
) -> None:
    who = await person(live_client, tenant, "SV001")
    face = await stored_face(committed, settings, tenant, who)
    with pytest.raises(Interrupted):
        await rolled_back(
            committed,
            tenant,
            lambda session: service.delete_person(session, principal_of(tenant), uuid.UUID(who)),
        )
    await drain(settings, database_urls)
    assert await get_storage(settings).exists(tenant.org_id, face.photo_key)
    async with committed.transaction(org_id=tenant.org_id) as session:
        assert await session.get(Person, uuid.UUID(who)) is not None
        assert await session.get(Face, face.id) is not None


async def test_a_committed_person_deletion_removes_the_photos_after_the_commit(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    database_urls: DatabaseUrls,
) -> None:
    who = await person(live_client, tenant, "SV001")
    faces = [await stored_face(committed, settings, tenant, who) for _ in range(2)]
    storage = get_storage(settings)
    response = await live_client.delete(f"{API}/people/{who}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    said = response.json()
    assert (said["faces_deleted"], said["photos_deleted"]) == (2, 2)
    assert all([await storage.exists(tenant.org_id, f.photo_key) for f in faces])  # not yet
    await drain(settings, database_urls)
    assert not any([await storage.exists(tenant.org_id, f.photo_key) for f in faces])
    job = await live_client.get(
        f"/api/v1/jobs/{said['photo_removal_job_id']}", headers=tenant.headers
    )
    assert (job.json()["status"], job.json()["result"]) == ("succeeded", {"deleted": 2})


async def test_one_face_deleted_goes_with_its_photo_only_when_committed(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    database_urls: DatabaseUrls,
) -> None:
    who = await person(live_client, tenant, "SV001")
    kept, removed = [await stored_face(committed, settings, tenant, who) for _ in range(2)]
    with pytest.raises(Interrupted):
        await rolled_back(
            committed,
            tenant,
            lambda session: service.delete_face(
                session, principal_of(tenant), kept.person_id, kept.id
            ),
        )
    path = f"{API}/people/{who}/faces/{removed.id}"
    assert (await live_client.delete(path, headers=tenant.headers)).status_code == 204
    await drain(settings, database_urls)
    storage = get_storage(settings)
    assert await storage.exists(tenant.org_id, kept.photo_key)
    assert not await storage.exists(tenant.org_id, removed.photo_key)
    faces = await live_client.get(f"{API}/people/{who}/faces", headers=tenant.headers)
    assert [f["id"] for f in faces.json()] == [str(kept.id)]
