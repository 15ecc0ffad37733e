"""Evidence retention: class photos kept as evidence go after the org's retention period.

A photo's age is that of the oldest mark or review naming it (when it was taken). Its rows
keep what they say (who was marked, with which box and distance) and record that the photo
was removed by retention (`evidence_removed_at`, `photo_key` None); a session's evidence
record of the photo (`Evidence`: the photo and its annotated copy) goes with its files. The
files themselves go through core's removal job, queued in the same transaction, so a
rollback keeps both.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, union, update
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.attendance import repository
from touchstone.attendance.models import Evidence, Mark, Review
from touchstone.core.audit import record_audit
from touchstone.core.auth import system_principal
from touchstone.core.storage.removal import delete_after_commit

KEYS_PER_REMOVAL_JOB = 500
"""Keys travel in the removal job's arguments: several modest jobs, not one huge one."""


async def expired_keys(session: AsyncSession, org_id: uuid.UUID, cutoff: datetime) -> list[str]:
    taken = union(
        select(Mark.photo_key.label("key"), Mark.created_at.label("at")).where(
            Mark.org_id == org_id, Mark.photo_key.is_not(None)
        ),
        select(Review.photo_key.label("key"), Review.created_at.label("at")).where(
            Review.org_id == org_id, Review.photo_key.is_not(None)
        ),
    ).subquery()
    rows = await session.scalars(
        select(taken.c.key)
        .group_by(taken.c.key)
        .having(func.min(taken.c.at) < cutoff)
        .order_by(taken.c.key)
    )
    return [key for key in rows if key is not None]


async def expire_evidence(session: AsyncSession, org_id: uuid.UUID, now: datetime) -> int:
    """Remove the org's expired evidence photos; how many."""
    settings = await repository.settings_row(session, org_id)
    if settings is None or settings.evidence_retention_days is None:
        return 0
    cutoff = now - timedelta(days=settings.evidence_retention_days)
    records = await session.execute(
        delete(Evidence)
        .where(Evidence.org_id == org_id, Evidence.created_at < cutoff)
        .returning(Evidence.photo_key, Evidence.annotated_key)
    )
    recorded = {key for row in records for key in row if key is not None}
    keys = sorted(recorded.union(await expired_keys(session, org_id, cutoff)))
    if not keys:
        return 0
    for table in (Mark, Review):
        await session.execute(
            update(table)
            .where(table.org_id == org_id, table.photo_key.in_(keys))
            .values(photo_key=None, evidence_removed_at=now)
        )
    principal = system_principal(org_id)
    for start in range(0, len(keys), KEYS_PER_REMOVAL_JOB):
        await delete_after_commit(session, principal, keys[start : start + KEYS_PER_REMOVAL_JOB])
    await record_audit(
        session,
        principal,
        "attendance.evidence.expired",
        "attendance_settings",
        org_id,
        {"photos": len(keys), "retention_days": settings.evidence_retention_days},
    )
    await session.flush()
    return len(keys)
