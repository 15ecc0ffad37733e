"""Housekeeping jobs every deployment runs (periodic, no tenant)."""

from __future__ import annotations

from sqlalchemy import text

from touchstone.core.db import Database
from touchstone.core.jobs.runtime import job_app, system_job

FINISHED_JOB_RETENTION_DAYS = 30
PROCRASTINATE_RETENTION_HOURS = 72
RELAYED_EVENT_RETENTION_DAYS = 7


@system_job(cron="17 3 * * *")
async def purge_finished_jobs(database: Database) -> None:
    """Forget finished jobs after a month (an owner-run function: it spans every tenant)."""
    async with database.transaction() as session:
        await session.execute(
            text("select purge_finished_jobs(:days)"), {"days": FINISHED_JOB_RETENTION_DAYS}
        )
    await job_app.job_manager.delete_old_jobs(
        nb_hours=PROCRASTINATE_RETENTION_HOURS,
        include_failed=True,
        include_cancelled=True,
        include_aborted=True,
    )


@system_job(cron="*/15 * * * *")
async def purge_expired_idempotency_keys(database: Database) -> None:
    async with database.transaction() as session:
        await session.execute(text("select purge_expired_idempotency_keys()"))


@system_job(cron="37 3 * * *")
async def purge_relayed_events(database: Database) -> None:
    """Live streams can resume up to a week back; older events are gone."""
    async with database.transaction() as session:
        await session.execute(
            text("select purge_relayed_events(:days)"), {"days": RELAYED_EVENT_RETENTION_DAYS}
        )
