"""What the API reports about jobs: workers alive (readiness) and queue figures (/metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import text

from touchstone.core.db import Database
from touchstone.core.metrics import JOB_DURATION, JOB_QUEUE_DEPTH, JOBS_RECENT

STATS_WINDOW_SECONDS = 3600


async def worker_check(request: Request) -> dict[str, Any]:
    """Workers whose heartbeat is fresh; required for readiness unless configured otherwise."""
    database: Database = request.app.state.database
    settings = request.app.state.settings
    async with database.engine.connect() as connection:
        alive = (
            await connection.execute(
                text(
                    "select count(*) from procrastinate_workers "
                    "where last_heartbeat > now() - make_interval(secs => :s)"
                ),
                {"s": settings.stalled_worker_seconds},
            )
        ).scalar_one()
    return {"ok": alive > 0 or not settings.health_requires_worker, "workers_alive": alive}


async def refresh_job_metrics(database: Database) -> None:
    async with database.engine.connect() as connection:
        depth = (
            await connection.execute(
                text(
                    "select queue_name, status, count(*) from procrastinate_jobs "
                    "where status in ('todo', 'doing') group by 1, 2"
                )
            )
        ).all()
        stats = (
            await connection.execute(
                text("select task, status, jobs, p50_seconds, p95_seconds from job_stats(:w)"),
                {"w": STATS_WINDOW_SECONDS},
            )
        ).all()
    for gauge in (JOB_QUEUE_DEPTH, JOBS_RECENT, JOB_DURATION):
        gauge.clear()
    for queue, status, count in depth:
        JOB_QUEUE_DEPTH.labels(queue, status).set(count)
    for task, status, count, p50, p95 in stats:
        JOBS_RECENT.labels(task, status).set(count)
        if status == "succeeded":
            JOB_DURATION.labels(task, "0.5").set(p50 or 0)
            JOB_DURATION.labels(task, "0.95").set(p95 or 0)
