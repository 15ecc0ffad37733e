"""Timetables: weekly slots per group, sessions generated from them, late arrivals.

Slots are wall-clock times in the group's zone (or the org's), so a lesson at 08:00 stays at
08:00 across a daylight-saving change; each generated session stores its instants in UTC.
Generation is idempotent: a session is unique per (slot, start), so running it twice over
the same dates adds nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BindParameter, bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

import touchstone.identity.service as identity
from touchstone.attendance import matching, repository
from touchstone.attendance.exceptions import GroupNotFound
from touchstone.attendance.models import Group, Session, TimetableSlot
from touchstone.attendance.models import Settings as SettingsRow
from touchstone.attendance.schemas import (
    GeneratedSessions,
    GroupOut,
    GroupUpdate,
    OrgSettings,
    OrgSettingsUpdate,
    SessionGeneration,
    SessionOut,
    SlotOut,
    TimetableIn,
    TimetableOut,
)
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.db import utcnow
from touchstone.core.errors import InvalidInput, NotFound
from touchstone.core.reads import (
    Rows,
    Statements,
    TenantRead,
    columns_for,
    item_query,
    row_query,
)

DEFAULT_TIMEZONE = "UTC"
PRESENT, LATE = "present", "late"


def status_at(taken: Session, at: datetime) -> str:
    """`late` when the mark is taken after the session's cut-off, else `present`."""
    return LATE if taken.late_after is not None and at > taken.late_after else PRESENT


async def org_settings_row(session: AsyncSession, org_id: uuid.UUID) -> SettingsRow:
    """The org's settings row, created with the defaults when it has none yet."""
    row = await repository.settings_row(session, org_id)
    if row is None:
        row = SettingsRow(
            org_id=org_id,
            match_threshold=matching.DEFAULT_THRESHOLD,
            match_margin=matching.DEFAULT_MARGIN,
            timezone=DEFAULT_TIMEZONE,
        )
        session.add(row)
        await session.flush()
    return row


async def org_timezone(session: AsyncSession, org_id: uuid.UUID) -> str:
    row = await repository.settings_row(session, org_id)
    return row.timezone if row is not None else DEFAULT_TIMEZONE


_ORG: BindParameter[uuid.UUID] = bindparam("org_id")
ORG_SETTINGS = row_query(
    select(SettingsRow.timezone, SettingsRow.evidence_retention_days).where(
        SettingsRow.org_id == _ORG
    )
)
GROUP_ZONE = row_query(
    select(Group.timezone).where(Group.org_id == _ORG, Group.id == bindparam("id"))
)
SLOTS = item_query(
    select(*columns_for(SlotOut, TimetableSlot))
    .where(TimetableSlot.org_id == _ORG, TimetableSlot.group_id == bindparam("id"))
    .order_by(TimetableSlot.weekday, TimetableSlot.starts_at),
    SlotOut,
)


def _org_settings(rows: Rows) -> OrgSettings:
    if not rows:
        return OrgSettings(timezone=DEFAULT_TIMEZONE, evidence_retention_days=None)
    zone, days = rows[0]
    return OrgSettings(timezone=zone, evidence_retention_days=days)


async def read_org_settings(read: TenantRead) -> OrgSettings:
    def plan(principal: Principal) -> Statements:
        return [(ORG_SETTINGS.query, {"org_id": principal.org_id})]

    (rows,) = await read.fetch(plan)
    return _org_settings(rows)


async def update_org_settings(
    session: AsyncSession, principal: Principal, data: OrgSettingsUpdate
) -> OrgSettings:
    row = await org_settings_row(session, principal.org_id)
    changes = data.model_dump(exclude_unset=True)
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    await record_audit(
        session,
        principal,
        "attendance.settings.updated",
        "attendance_settings",
        principal.org_id,
        changes,
    )
    await session.flush()
    return OrgSettings(timezone=row.timezone, evidence_retention_days=row.evidence_retention_days)


async def _group(session: AsyncSession, principal: Principal, group_id: uuid.UUID) -> Group:
    group = await repository.get_group(session, principal.org_id, group_id)
    if group is None:
        raise GroupNotFound()
    return group


async def update_group(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, data: GroupUpdate
) -> GroupOut:
    """Description, the timetable's zone and the owner (an active member of the org)."""
    group = await _group(session, principal, group_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("owner_id") is not None:
        try:
            owner = await identity.get_member(session, principal, changes["owner_id"])
        except NotFound:
            raise InvalidInput("owner_id: not a user of this org") from None
        if not owner.is_active:
            raise InvalidInput("owner_id: the user is not active in this org")
    for name, value in changes.items():
        setattr(group, name, value)
    await record_audit(
        session,
        principal,
        "attendance.group.updated",
        "attendance_group",
        group_id,
        {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in changes.items()},
    )
    await session.flush()
    return GroupOut.model_validate(group)


def _slot_out(slot: TimetableSlot) -> SlotOut:
    return SlotOut.model_validate(slot)


async def _timetable(session: AsyncSession, principal: Principal, group: Group) -> TimetableOut:
    slots = await session.scalars(
        select(TimetableSlot)
        .where(TimetableSlot.org_id == principal.org_id, TimetableSlot.group_id == group.id)
        .order_by(TimetableSlot.weekday, TimetableSlot.starts_at)
    )
    zone = group.timezone or await org_timezone(session, principal.org_id)
    return TimetableOut(
        group_id=group.id,
        timezone=zone,
        timezone_source="group" if group.timezone else "org",
        slots=[_slot_out(slot) for slot in slots],
    )


async def read_timetable(read: TenantRead, group_id: uuid.UUID) -> TimetableOut:
    """The group, its slots and the org's zone in one round trip."""

    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "id": group_id}
        return [
            (GROUP_ZONE.query, values),
            (SLOTS.query, values),
            (ORG_SETTINGS.query, values),
        ]

    group, slots, settings = await read.fetch(plan)
    if not group:
        raise GroupNotFound()
    (zone,) = group[0]
    return TimetableOut(
        group_id=group_id,
        timezone=zone or _org_settings(settings).timezone,
        timezone_source="group" if zone else "org",
        slots=[SlotOut(**row) for row in SLOTS.items(slots)],
    )


async def replace_timetable(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, data: TimetableIn
) -> TimetableOut:
    """The group's weekly slots become exactly `data.slots`. A slot with the same weekday
    and start is kept and updated, so the sessions generated from it stay its own and
    generating again does not duplicate them; a removed slot's sessions stay, without it."""
    group = await _group(session, principal, group_id)
    existing = {
        (slot.weekday, slot.starts_at): slot
        for slot in await session.scalars(
            select(TimetableSlot).where(
                TimetableSlot.org_id == principal.org_id, TimetableSlot.group_id == group_id
            )
        )
    }
    wanted = {(slot.weekday, slot.starts_at): slot for slot in data.slots}
    for key, row in existing.items():
        if key not in wanted:
            await session.delete(row)
    for key, slot in wanted.items():
        row = existing.get(key) or TimetableSlot(
            org_id=principal.org_id,
            group_id=group_id,
            weekday=slot.weekday,
            starts_at=slot.starts_at,
            created_at=utcnow(),
        )
        row.ends_at, row.late_after_minutes = slot.ends_at, slot.late_after_minutes
        row.label = slot.label or f"{slot.starts_at:%H:%M}"
        session.add(row)
    await record_audit(
        session,
        principal,
        "attendance.timetable.replaced",
        "attendance_group",
        group_id,
        {
            "slots": len(wanted),
            "kept": len(wanted.keys() & existing.keys()),
            "removed": len(existing.keys() - wanted.keys()),
        },
    )
    await session.flush()
    return await _timetable(session, principal, group)


async def generate_sessions(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, data: SessionGeneration
) -> GeneratedSessions:
    """One session per slot and day in the range (local dates in the timetable's zone);
    the ones that exist already are counted, not made again."""
    group = await _group(session, principal, group_id)
    timetable = await _timetable(session, principal, group)
    zone = ZoneInfo(timetable.timezone)
    rows = []
    day = data.date_from
    while day <= data.date_to:
        for slot in timetable.slots:
            if slot.weekday != day.isoweekday():
                continue
            starts_at = datetime.combine(day, slot.starts_at, tzinfo=zone).astimezone(UTC)
            ends_at = datetime.combine(day, slot.ends_at, tzinfo=zone).astimezone(UTC)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "org_id": principal.org_id,
                    "group_id": group_id,
                    "slot_id": slot.id,
                    "label": f"{slot.label} {day.isoformat()}",
                    "starts_at": starts_at,
                    "ends_at": ends_at,
                    "late_after": starts_at + timedelta(minutes=slot.late_after_minutes),
                    "created_by": principal.id,
                    "created_at": utcnow(),
                }
            )
        day += timedelta(days=1)
    created: list[uuid.UUID] = []
    if rows:
        result = await session.execute(
            insert(Session)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["slot_id", "starts_at"])
            .returning(Session.id)
        )
        created = list(result.scalars())
    await record_audit(
        session,
        principal,
        "attendance.sessions.generated",
        "attendance_group",
        group_id,
        {
            "date_from": data.date_from.isoformat(),
            "date_to": data.date_to.isoformat(),
            "created": len(created),
        },
    )
    made = await session.scalars(
        select(Session).where(Session.org_id == principal.org_id, Session.id.in_(created))
    )
    return GeneratedSessions(
        created=len(created),
        existing=len(rows) - len(created),
        sessions=sorted(
            (SessionOut.model_validate(s) for s in made), key=lambda s: (s.starts_at, s.label)
        ),
    )
