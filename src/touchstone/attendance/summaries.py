"""The daily summary a group's owner gets by email: present, late and absent counts of the
day's sessions, and who was absent.

A group's day is due once its local time (group's zone, else the org's) passes
`SUMMARY_HOUR`; until then the day before is the latest due. Each (group, day) is recorded
with an insert that skips an existing row, so however often the hourly job runs, and even
when two runs overlap, a day is summarised once. Days without a session send nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

import touchstone.identity.service as identity
from touchstone.attendance import timetable
from touchstone.attendance.models import DailySummary, Group, Mark, Membership, Person, Session
from touchstone.core.auth import system_principal
from touchstone.core.config import Settings
from touchstone.core.email import EmailTemplates, header_text, queue_email
from touchstone.core.errors import NotFound

SUMMARY_HOUR = 18
"""Local hour after which a day's sessions are taken as over."""
TEMPLATES = EmailTemplates(Path(__file__).with_name("templates") / "email")


@dataclass
class GroupDay:
    """One group's figures for one local day (member-sessions)."""

    group_id: uuid.UUID
    name: str
    day: date
    sessions: int = 0
    present: int = 0
    late: int = 0
    absent: int = 0
    absentees: list[dict[str, Any]] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.present + self.late + self.absent

    @property
    def attended(self) -> int:
        return self.present + self.late


def due_day(now: datetime, zone: ZoneInfo) -> date:
    local = now.astimezone(zone)
    return local.date() if local.time() >= time(SUMMARY_HOUR) else local.date() - timedelta(days=1)


async def group_day(
    session: AsyncSession, org_id: uuid.UUID, group: Group, day: date, zone: ZoneInfo, now: datetime
) -> GroupDay:
    """The figures of the group's sessions that started on `day` (local) by `now`."""
    start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    held = list(
        await session.scalars(
            select(Session.id).where(
                Session.org_id == org_id,
                Session.group_id == group.id,
                Session.starts_at >= start,
                Session.starts_at < min(end, now + timedelta(microseconds=1)),
            )
        )
    )
    summary = GroupDay(group.id, group.name, day, sessions=len(held))
    if not held:
        return summary
    members = (
        await session.execute(
            select(Person.id, Person.code, Person.full_name)
            .join(Membership, Membership.person_id == Person.id)
            .where(Membership.org_id == org_id, Membership.group_id == group.id)
            .order_by(Person.code)
        )
    ).all()
    marks = {
        (row.session_id, row.person_id): row.status
        for row in await session.execute(
            select(Mark.session_id, Mark.person_id, Mark.status).where(
                Mark.org_id == org_id, Mark.session_id.in_(held)
            )
        )
    }
    missed: Counter[uuid.UUID] = Counter()
    for session_id in held:
        for member in members:
            status = marks.get((session_id, member.id), "absent")
            if status == timetable.LATE:
                summary.late += 1
            elif status == timetable.PRESENT:
                summary.present += 1
            else:
                summary.absent += 1
                missed[member.id] += 1
    summary.absentees = [
        {
            "code": header_text(member.code),
            "full_name": header_text(member.full_name),
            "missed": missed[member.id],
        }
        for member in members
        if missed[member.id]
    ]
    return summary


async def send_daily_summaries(
    session: AsyncSession, settings: Settings, org_id: uuid.UUID, now: datetime
) -> int:
    """Email each owner the due days of their groups not summarised yet; the number of
    emails queued (they leave when this transaction commits)."""
    groups = list(
        await session.scalars(
            select(Group).where(Group.org_id == org_id, Group.owner_id.is_not(None))
        )
    )
    if not groups:
        return 0
    org_zone = await timetable.org_timezone(session, org_id)
    by_owner: dict[tuple[uuid.UUID, date], list[tuple[GroupDay, uuid.UUID]]] = defaultdict(list)
    for group in groups:
        assert group.owner_id is not None
        zone = ZoneInfo(group.timezone or org_zone)
        day = due_day(now, zone)
        figures = await group_day(session, org_id, group, day, zone, now)
        if not figures.sessions:
            continue
        claimed = await session.scalar(
            insert(DailySummary)
            .values(
                id=uuid.uuid4(),
                org_id=org_id,
                group_id=group.id,
                day=day,
                owner_id=group.owner_id,
                sessions=figures.sessions,
                present=figures.present,
                late=figures.late,
                absent=figures.absent,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["group_id", "day"])
            .returning(DailySummary.id)
        )
        if claimed is not None:
            by_owner[(group.owner_id, day)].append((figures, claimed))
    principal = system_principal(org_id)
    org = await identity.get_org(session, principal)
    sent = 0
    for (owner_id, day), claims in by_owner.items():
        try:
            owner = await identity.get_member(session, principal, owner_id)
        except NotFound:
            continue
        if not owner.is_active:
            continue
        mail = TEMPLATES.render(
            "daily_summary",
            owner.email,
            owner.full_name,
            org_name=org.name,
            day=day.isoformat(),
            groups=[{**vars(g), "expected": g.expected, "attended": g.attended} for g, _ in claims],
        )
        email = await queue_email(session, settings, org_id, mail, kind="attendance_summary")
        await session.execute(
            update(DailySummary)
            .where(DailySummary.org_id == org_id, DailySummary.id.in_([i for _, i in claims]))
            .values(email_id=email.id)
        )
        sent += 1
    await session.flush()
    return sent
