"""Job tests need real commits: a worker reads the queue over its own connections."""

from __future__ import annotations

from sqlalchemy import NullPool, text
from sqlalchemy.ext.asyncio import create_async_engine

from touchstone.core.config import Settings
from touchstone.core.jobs.worker import run_worker
from touchstone.core.postgres import DatabaseUrls


async def drain(settings: Settings, database_urls: DatabaseUrls) -> None:
    """Run a worker in-process until no job is due (retries included)."""
    due = text(
        "select count(*) from procrastinate_jobs where status in ('todo', 'doing') "
        "and (scheduled_at is null or scheduled_at <= now())"
    )
    engine = create_async_engine(database_urls.runtime, poolclass=NullPool)
    try:
        for _ in range(20):
            await run_worker(settings, database_urls.runtime, concurrency=4, wait=False)
            async with engine.connect() as connection:
                if (await connection.execute(due)).scalar_one() == 0:
                    return
        raise AssertionError("jobs kept coming back")
    finally:
        await engine.dispose()
