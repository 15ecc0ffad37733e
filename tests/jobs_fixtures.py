"""Tasks the job tests (and the throughput benchmark) run; workers load them with --import."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from touchstone.core.jobs import JobRun, job


@job(queue="default", max_attempts=1)
async def noop(run: JobRun) -> None:
    return None


@job(queue="default", max_attempts=2)
async def report_progress(run: JobRun, steps: int) -> dict[str, object]:
    for step in range(1, steps + 1):
        await run.progress(step * 100 // steps, f"step {step} of {steps}")
    async with run.transaction() as session:
        tenant = (await session.execute(text("select current_setting('app.org_id')"))).scalar()
    return {"org_seen_by_job": tenant, "attempt": run.attempt}


@job(queue="default", max_attempts=3, backoff_seconds=0)
async def always_fails(run: JobRun) -> None:
    raise ValueError(f"broken input (attempt {run.attempt})")


@job(queue="default", max_attempts=2, timeout_seconds=0.2, backoff_seconds=0)
async def too_slow(run: JobRun) -> None:
    await asyncio.sleep(5)


@job(queue="cv", max_attempts=3, backoff_seconds=0)
async def sleeps(run: JobRun, seconds: float) -> dict[str, object]:
    await run.progress(10, "sleeping")
    await asyncio.sleep(seconds)
    return {"slept": seconds, "attempt": run.attempt}
