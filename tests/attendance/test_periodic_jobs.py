"""The periodic jobs through a real worker: daily summaries to group owners (real SMTP, the
suite's server) and evidence retention (files by core's removal job)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import numpy as np
from procrastinate.tasks import Task
from sqlalchemy import select

from tests.attendance.conftest import API, jpeg, person
from tests.conftest import Tenant, add_member, committed_tenant
from tests.core.jobs.conftest import drain
from tests.mail import MailServer, html_of, text_of
from touchstone.attendance import service, tasks
from touchstone.attendance.models import DailySummary, Evidence, Mark, Review
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.permissions import Role
from touchstone.core.postgres import DatabaseUrls
from touchstone.core.storage import get_storage


async def run_periodic(
    committed: Database, settings: Settings, urls: DatabaseUrls, task: Task[..., ..., ...]
) -> None:
    """What the scheduler does at the task's time: defer it, then let a worker run it (and
    the jobs it queues)."""
    async with committed.transaction() as session:
        raw = await (await session.connection()).get_raw_connection()
        await task.configure(connection=raw.driver_connection).defer_async()
    await drain(settings, urls)


def evening_zone() -> tuple[str, datetime]:
    """A fixed-offset zone where it is now between 18:00 and 22:59, and the time there."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"
        local = now.astimezone(ZoneInfo(name))
        if 18 <= local.hour <= 22:
            return name, local
    raise AssertionError("every hour of the day has an evening somewhere")


async def test_owners_get_the_days_summary_once(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    database_urls: DatabaseUrls,
    smtp_server: MailServer,
) -> None:
    headers = tenant.headers
    owner_id, _ = await add_member(live_client, tenant, Role.TEACHER)
    owner = (await live_client.get(f"/api/v1/users/{owner_id}", headers=headers)).json()
    zone, local = evening_zone()
    groups = {}
    for name in ("10A", "10B", "10C"):
        made = await live_client.post(f"{API}/groups", headers=headers, json={"name": name})
        groups[name] = made.json()["id"]
    for name in ("10A", "10B"):  # 10C has no owner; 10B has no session today
        patched = await live_client.patch(
            f"{API}/groups/{groups[name]}",
            headers=headers,
            json={"owner_id": owner_id, "timezone": zone},
        )
        assert patched.status_code == 200, patched.text
    a, b, c = [
        await person(live_client, tenant, code, consent=False) for code in ("SV1", "SV2", "SV3")
    ]
    await live_client.post(
        f"{API}/groups/{groups['10A']}/members", headers=headers, json={"person_ids": [a, b, c]}
    )
    morning = local.replace(hour=8, minute=0, second=0, microsecond=0)
    yesterday = morning - timedelta(days=1)  # a day already over: not today's summary
    for starts_at, marks in (
        (morning, {a: "present", b: "late"}),
        (morning + timedelta(hours=2), {a: "present"}),
        (yesterday, {}),
    ):
        made = await live_client.post(
            f"{API}/groups/{groups['10A']}/sessions",
            headers=headers,
            json={"label": "lesson", "starts_at": starts_at.isoformat()},
        )
        for who, status in marks.items():
            mark = {"person_id": who, "present": True, "reason": "register", "status": status}
            await live_client.post(
                f"{API}/sessions/{made.json()['id']}/marks", headers=headers, json=mark
            )

    await run_periodic(committed, settings, database_urls, tasks.schedule_daily_summaries)
    (delivered,) = smtp_server.to(owner["email"])
    body = text_of(delivered.message).replace("\r\n", "\n")  # SMTP lines end in CRLF
    assert delivered.message["Subject"] == f"Attendance on {morning.date()}: 10A 3/6"
    assert "10A: 2 sessions, 2 present, 1 late, 3 absent" in body
    assert "  - SV2 Student SV2\n" in body
    assert "  - SV3 Student SV3 (2 sessions)\n" in body
    for absent_from_the_mail in ("SV1 ", "10B", "10C"):
        assert absent_from_the_mail not in body
    assert "<li>SV3 Student SV3 (2 sessions)</li>" in html_of(delivered.message)

    await run_periodic(committed, settings, database_urls, tasks.schedule_daily_summaries)
    assert len(smtp_server.to(owner["email"])) == 1  # the day is summarised once
    async with committed.transaction(org_id=tenant.org_id) as session:
        (row,) = (await session.scalars(select(DailySummary))).all()
    assert (row.day, row.present, row.late, row.absent) == (morning.date(), 2, 1, 3)
    assert row.email_id is not None


async def stored_photo(settings: Settings, tenant: Tenant) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        yield jpeg(np.full((40, 40, 3), 90, np.uint8))

    stored = await get_storage(settings).put(tenant.org_id, chunks(), kind=service.EVIDENCE_KIND)
    return stored.key


async def evidence(
    committed: Database, settings: Settings, tenant: Tenant, session_id: str, who: str, age: int
) -> str:
    """A stored class photo and the mark naming it, taken `age` days ago."""
    key = await stored_photo(settings, tenant)
    taken = datetime.now(UTC) - timedelta(days=age)
    async with committed.transaction(org_id=tenant.org_id) as session:
        session.add(
            Mark(
                org_id=tenant.org_id,
                session_id=uuid.UUID(session_id),
                person_id=uuid.UUID(who),
                source="photo",
                distance=0.3,
                box=[1, 2, 3, 4],
                photo_key=key,
                marked_by=uuid.uuid4(),
                created_at=taken,
            )
        )
    return key


async def class_with_a_session(client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, list[str]]:
    group = await client.post(f"{API}/groups", headers=tenant.headers, json={"name": "10A"})
    people = [await person(client, tenant, code, consent=False) for code in ("SV1", "SV2")]
    await client.post(
        f"{API}/groups/{group.json()['id']}/members",
        headers=tenant.headers,
        json={"person_ids": people},
    )
    made = await client.post(
        f"{API}/groups/{group.json()['id']}/sessions", headers=tenant.headers, json={"label": "P1"}
    )
    return made.json()["id"], people


async def test_evidence_photos_go_after_the_orgs_retention_period(
    live_client: httpx.AsyncClient,
    tenant: Tenant,
    committed: Database,
    settings: Settings,
    database_urls: DatabaseUrls,
) -> None:
    kept = await live_client.patch(
        f"{API}/org-settings", headers=tenant.headers, json={"evidence_retention_days": 30}
    )
    assert kept.json()["evidence_retention_days"] == 30
    session_id, (first, second) = await class_with_a_session(live_client, tenant)
    old = await evidence(committed, settings, tenant, session_id, first, age=40)
    recent = await evidence(committed, settings, tenant, session_id, second, age=1)
    async with committed.transaction(org_id=tenant.org_id) as session:
        session.add(
            Review(
                org_id=tenant.org_id,
                session_id=uuid.UUID(session_id),
                candidate_id=uuid.UUID(second),
                distance=0.6,
                box=[5, 6, 7, 8],
                photo_key=old,
                status="open",
                created_at=datetime.now(UTC) - timedelta(days=40),
            )
        )
    annotated = await stored_photo(settings, tenant)
    async with committed.transaction(org_id=tenant.org_id) as session:
        session.add(
            Evidence(
                org_id=tenant.org_id,
                session_id=uuid.UUID(session_id),
                status="done",
                photo_key=old,
                photo_sha256="0" * 64,
                annotated_key=annotated,
                created_by=uuid.uuid4(),
                created_at=datetime.now(UTC) - timedelta(days=40),
            )
        )
    other = await committed_tenant(committed, settings, live_client)  # keeps photos forever
    other_session, (someone, _) = await class_with_a_session(live_client, other)
    theirs = await evidence(committed, settings, other, other_session, someone, age=400)

    await run_periodic(committed, settings, database_urls, tasks.schedule_evidence_retention)
    storage = get_storage(settings)
    assert not await storage.exists(tenant.org_id, old)
    assert not await storage.exists(tenant.org_id, annotated)
    assert await storage.exists(tenant.org_id, recent)
    assert await storage.exists(other.org_id, theirs)
    async with committed.transaction(org_id=tenant.org_id) as session:
        marks = {m.person_id: m for m in await session.scalars(select(Mark))}
        (review,) = (await session.scalars(select(Review))).all()
        assert (await session.scalars(select(Evidence))).all() == []
    expired = marks[uuid.UUID(first)]
    assert (expired.photo_key, expired.box) == (None, [1, 2, 3, 4])  # the mark itself stays
    assert expired.evidence_removed_at is not None
    assert (review.photo_key, review.evidence_removed_at is not None) == (None, True)
    assert marks[uuid.UUID(second)].photo_key == recent
    assert marks[uuid.UUID(second)].evidence_removed_at is None
    detail = await live_client.get(f"{API}/sessions/{session_id}", headers=tenant.headers)
    assert {m["code"] for m in detail.json()["present"]} == {"SV1", "SV2"}
    audit = await live_client.get("/api/v1/audit-events", headers=tenant.headers)
    actions = [e["action"] for e in audit.json()["items"]]
    assert "attendance.evidence.expired" in actions
