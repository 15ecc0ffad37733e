"""Jobs of the attendance module (they carry ids only): marking a session from a class
photo (`evidence.mark_session_photo`), the periodic daily summaries and evidence retention.

The periodic parts run with no tenant: they only ask the owner-run lookups which orgs have
work (migration 0016) and queue one tenant job per org, which does the work under the
org's row-level security and shows in its job list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, text

from touchstone.attendance import retention, summaries
from touchstone.attendance.evidence import mark_session_photo
from touchstone.core.auth import system_principal
from touchstone.core.db import Database
from touchstone.core.jobs import JobRun, defer, job, system_job

__all__ = [
    "expire_evidence",
    "mark_session_photo",
    "schedule_daily_summaries",
    "schedule_evidence_retention",
    "send_daily_summaries",
]


@job(read_permission="attendance:settings", queue="default", max_attempts=3)
async def send_daily_summaries(run: JobRun) -> dict[str, Any]:
    """The org's due daily summaries, one email per owner and day (at most once each)."""
    async with run.transaction() as session:
        sent = await summaries.send_daily_summaries(
            session, run.settings, run.org_id, datetime.now(UTC)
        )
    return {"emails": sent}


@job(read_permission="attendance:settings", queue="default", max_attempts=3)
async def expire_evidence(run: JobRun) -> dict[str, Any]:
    """The org's class photos older than its retention period: their files (by core's
    removal job, queued in the same transaction) and the rows' keys."""
    async with run.transaction() as session:
        removed = await retention.expire_evidence(session, run.org_id, datetime.now(UTC))
    return {"photos": removed}


SUMMARY_ORGS = text("select org_id from attendance_summary_orgs()")
RETENTION_ORGS = text("select org_id from attendance_retention_orgs()")


async def _fan_out(database: Database, lookup: TextClause, task: Any) -> None:
    async with database.transaction() as session:
        orgs = list(await session.scalars(lookup))
    for org_id in orgs:
        async with database.transaction(org_id=org_id) as session:
            await defer(session, system_principal(org_id), task)


@system_job(cron="5 * * * *")
async def schedule_daily_summaries(database: Database) -> None:
    """Hourly: each group's day is due at its own local evening."""
    await _fan_out(database, SUMMARY_ORGS, send_daily_summaries)


@system_job(cron="23 2 * * *")
async def schedule_evidence_retention(database: Database) -> None:
    await _fan_out(database, RETENTION_ORGS, expire_evidence)
