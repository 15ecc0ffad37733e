"""Tasks the job tests (and the throughput benchmark) run; workers load them with --import."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.errors import InvalidInput
from touchstone.core.jobs import JobRun, job


@job(read_permission="org:read", queue="default", max_attempts=1)
async def noop(run: JobRun) -> None:
    return None


@job(read_permission="org:read", queue="default", max_attempts=2)
async def report_progress(run: JobRun, steps: int) -> dict[str, object]:
    for step in range(1, steps + 1):
        await run.progress(step * 100 // steps, f"step {step} of {steps}")
    async with run.transaction() as session:
        tenant = (await session.execute(text("select current_setting('app.org_id')"))).scalar()
    return {"org_seen_by_job": tenant, "attempt": run.attempt}


@job(read_permission="org:read", queue="default", max_attempts=3, backoff_seconds=0)
async def always_fails(run: JobRun) -> None:
    raise ValueError(f"broken input (attempt {run.attempt})")


@job(
    read_permission="org:read",
    queue="default",
    max_attempts=2,
    timeout_seconds=0.2,
    backoff_seconds=0,
)
async def too_slow(run: JobRun) -> None:
    await asyncio.sleep(5)


@job(read_permission="org:read", queue="cv", max_attempts=3, backoff_seconds=0)
async def sleeps(run: JobRun, seconds: float) -> dict[str, object]:
    await run.progress(10, "sleeping")
    await asyncio.sleep(seconds)
    return {"slept": seconds, "attempt": run.attempt}


async def record_end(
    session: AsyncSession, org_id: uuid.UUID, problem: dict[str, Any], **arguments: Any
) -> None:
    """An end hook that leaves a trace: an audit event with the problem and the arguments."""
    changes = {"problem": problem, "arguments": arguments}
    await record_audit(session, None, "test.job_ended", "job", None, changes, org_id=org_id)


@job(read_permission="org:read", max_attempts=2, backoff_seconds=0, on_end=record_end)
async def fails_then_ends(run: JobRun, label: str) -> None:
    raise ValueError(f"{label} broke (attempt {run.attempt})")


@job(read_permission="org:read", max_attempts=5, on_end=record_end)
async def refuses_its_input(run: JobRun, label: str) -> None:
    raise InvalidInput(f"{label} can never work")


@job(read_permission="org:read", max_attempts=1)
async def fails_on_its_only_attempt(run: JobRun) -> None:
    raise ValueError("no second chance")


@job(read_permission="statements:read", max_attempts=1)
async def statements_only(run: JobRun) -> None:
    return None
