"""Background jobs on procrastinate, in the same PostgreSQL as the data they concern.

The three things a module needs:

    from touchstone.core.jobs import JobRun, defer, job

    @job(read_permission="statements:read", queue="documents", on_end=statement_failed)
    async def parse_statement(run: JobRun, statement_id: str) -> dict[str, str]:
        async with run.transaction() as session: ...      # the job's org, RLS on
        await run.progress(50, "half way")
        return {"url": f"/api/v1/statements/{statement_id}"}

    record = await defer(session, principal, parse_statement, statement_id=str(s.id))
    return accepted(record)  # 202, Location: /api/v1/jobs/{id}; commits with the request
"""

from touchstone.core.jobs.models import JobRecord, JobStatus
from touchstone.core.jobs.router import accepted
from touchstone.core.jobs.runtime import (
    QUEUES,
    JobFailed,
    JobRun,
    defer,
    defer_platform_job,
    is_permanent,
    job,
    job_app,
    platform_job,
    system_job,
)

__all__ = [
    "QUEUES",
    "JobFailed",
    "JobRecord",
    "JobRun",
    "JobStatus",
    "accepted",
    "defer",
    "defer_platform_job",
    "is_permanent",
    "job",
    "job_app",
    "platform_job",
    "system_job",
]
