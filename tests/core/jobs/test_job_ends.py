"""A job that ends for good says so, once, and its module's objects end with it (issue 13).

Ends: the last attempt failed, a permanent error (retrying cannot help), a cancellation, or
runs that kept dying with their worker. Each calls the job's `on_end` hook exactly once and
leaves procrastinate's own row final, so nothing is retried forever or stays `processing`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from tests import jobs_fixtures
from tests.conftest import add_member, assert_problem
from tests.core.jobs.test_jobs import Jobs
from touchstone.core.audit import AuditEvent
from touchstone.core.jobs import JobRecord
from touchstone.core.permissions import Role


async def _ends(jobs: Jobs, record: JobRecord) -> list[dict[str, Any]]:
    """The traces `record_end` left for this job (its label is the job's own)."""
    async with jobs.committed.transaction(org_id=jobs.tenant.org_id) as session:
        rows = await session.execute(
            select(AuditEvent.changes).where(AuditEvent.action == "test.job_ended")
        )
        label = record.arguments["label"]
        return [c for c in rows.scalars() if c["arguments"].get("label") == label]


async def _procrastinate_status(jobs: Jobs, record: JobRecord) -> str:
    async with jobs.committed.transaction() as session:
        status: str = (
            await session.execute(
                text("select status from procrastinate_jobs where id = :id"),
                {"id": record.procrastinate_id},
            )
        ).scalar_one()
    return status


async def _defer_labelled(jobs: Jobs, task: Any) -> JobRecord:
    return await jobs.defer(task, label=str(uuid.uuid4()))


async def test_the_last_failed_attempt_ends_the_job_once(
    jobs: Jobs, caplog: pytest.LogCaptureFixture
) -> None:
    record = await _defer_labelled(jobs, jobs_fixtures.fails_then_ends)
    with caplog.at_level(logging.INFO, logger="procrastinate.worker"):
        await jobs.drain()
    body = await jobs.status(record)
    assert (body["status"], body["attempts"], body["error"]["code"]) == ("failed", 2, "job_failed")
    (end,) = await _ends(jobs, record)
    assert end["problem"]["code"] == "job_failed"
    assert "broke (attempt 2)" in end["problem"]["detail"]
    assert await _procrastinate_status(jobs, record) == "failed"
    # What reaches the log (procrastinate's logger is set to WARNING): its line for the
    # outcome stays, the traceback goes; the job logged its failure itself, once.
    (outcome,) = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and record.arguments["label"] in r.getMessage()
    ]
    assert outcome.exc_info is None


async def test_a_permanent_error_is_not_retried(jobs: Jobs) -> None:
    record = await _defer_labelled(jobs, jobs_fixtures.refuses_its_input)
    await jobs.drain()
    body = await jobs.status(record)
    assert (body["status"], body["attempts"]) == ("failed", 1)
    assert (body["error"]["status"], body["error"]["code"]) == (422, "invalid_input")
    (end,) = await _ends(jobs, record)
    assert end["problem"]["code"] == "invalid_input"
    assert await _procrastinate_status(jobs, record) == "failed"


async def test_a_job_with_one_attempt_is_not_retried_forever(jobs: Jobs) -> None:
    record = await jobs.defer(jobs_fixtures.fails_on_its_only_attempt)
    await jobs.drain()
    assert (await jobs.status(record))["status"] == "failed"
    assert await _procrastinate_status(jobs, record) == "failed"


async def test_a_job_whose_runs_keep_dying_is_given_up(jobs: Jobs) -> None:
    """Stall recovery re-queues the job of a killed worker (say, a file that crashes the
    parser); past its attempts, the next run ends it instead of running it again."""
    record = await _defer_labelled(jobs, jobs_fixtures.fails_then_ends)
    async with jobs.committed.transaction() as session:
        await session.execute(
            text("update procrastinate_jobs set attempts = 2 where id = :id"),
            {"id": record.procrastinate_id},
        )
    await jobs.drain()
    body = await jobs.status(record)
    assert (body["status"], body["error"]["code"]) == ("failed", "job_interrupted")
    (end,) = await _ends(jobs, record)
    assert end["problem"]["code"] == "job_interrupted"
    assert await _procrastinate_status(jobs, record) == "failed"


async def test_cancelling_a_queued_job_runs_its_end_hook(jobs: Jobs) -> None:
    record = await _defer_labelled(jobs, jobs_fixtures.fails_then_ends)
    cancelled = await jobs.client.post(
        f"/api/v1/jobs/{record.id}/cancel", headers=jobs.tenant.headers
    )
    assert cancelled.status_code == 202, cancelled.text
    await jobs.drain()
    (end,) = await _ends(jobs, record)
    assert end["problem"]["code"] == "job_cancelled"
    assert (await jobs.status(record))["status"] == "cancelled"


async def test_a_job_is_shown_only_to_holders_of_its_read_permission(
    jobs: Jobs, live_client: httpx.AsyncClient
) -> None:
    record = await jobs.defer(jobs_fixtures.statements_only)
    path = f"/api/v1/jobs/{record.id}"
    _, teacher = await add_member(live_client, jobs.tenant, Role.TEACHER)
    assert_problem(await live_client.get(path, headers=teacher), 404)
    _, analyst = await add_member(live_client, jobs.tenant, Role.ANALYST)
    assert (await live_client.get(path, headers=analyst)).status_code == 200
