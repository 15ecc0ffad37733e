"""Job status for clients: every long operation answers 202 with Location pointing here.

A job is shown only to callers the module that defined it lets read it (`@job`'s
`read_permission` and `visible`); to anyone else, as to another tenant, it does not exist.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, status
from fastapi.responses import JSONResponse
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.db import enter
from touchstone.core.deps import CurrentPrincipal, SessionDep
from touchstone.core.errors import Conflict, Forbidden, NotFound
from touchstone.core.jobs.models import JobRecord, JobStatus
from touchstone.core.jobs.runtime import JOB_KINDS, end_cancelled, job_app, may_read_job
from touchstone.core.reads import TenantRead, columns_for, item_query, read_items, tenant_read
from touchstone.core.routing import ApiRouter
from touchstone.core.schemas import OutputModel

router = ApiRouter(prefix="/jobs", tags=["jobs"])
JOBS_PATH = "/api/v1/jobs"


class JobOut(OutputModel):
    id: uuid.UUID
    task: str
    queue: str
    status: JobStatus
    progress: int
    message: str | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def accepted(record: JobRecord) -> JSONResponse:
    """`202 Accepted` with the job's status URL, for any route that starts a job."""
    return JSONResponse(
        JobOut.model_validate(record).model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"{JOBS_PATH}/{record.id}"},
    )


async def get_job(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID, *, for_update: bool = False
) -> JobRecord:
    query = select(JobRecord).where(JobRecord.id == job_id, JobRecord.org_id == principal.org_id)
    if for_update:
        query = query.with_for_update()
    record = (await session.execute(query)).scalar_one_or_none()
    if record is None or not await may_read_job(session, principal, record):
        raise NotFound("Job not found")
    return record


class _JobRead(JobOut):
    arguments: dict[str, Any]
    """What a kind's `visible` check looks at; never shown."""


_JOB = item_query(
    select(*columns_for(_JobRead, JobRecord)).where(
        JobRecord.id == bindparam("id"), JobRecord.org_id == bindparam("org_id")
    ),
    _JobRead,
)


@router.get("/{job_id}", response_model=JobOut)
async def job_status(
    job_id: uuid.UUID, read: Annotated[TenantRead, Depends(tenant_read(None))]
) -> JobOut:
    """Any caller may ask; the job's kind decides who sees it (`may_read_job`'s rules)."""
    found = await read_items(read, lambda caller: (_JOB, {"org_id": caller.org_id, "id": job_id}))
    if not found or not await _may_read(read, found[0]):
        raise NotFound("Job not found")
    return JobOut.model_validate(found[0])


async def _may_read(read: TenantRead, job: dict[str, Any]) -> bool:
    """`may_read_job` for a job read through `read`: the kind's permission on the caller the
    read confirmed, and only for a kind with a `visible` check (none declares one today),
    that check in a session entered as the caller, as on the ORM path."""
    principal = read.principal
    assert principal is not None  # the fetch confirmed the caller
    kind = JOB_KINDS.get(job["task"])
    if kind is None or not principal.can(kind.read_permission):
        return False
    if kind.visible is None:
        return True
    async with read.database.session() as session:
        caller = await enter(session, read.entry)
        return await may_read_job(session, caller, JobRecord(**job))


@router.post("/{job_id}/cancel", response_model=JobOut, status_code=202)
async def cancel_job(job_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal) -> JobOut:
    """Queued jobs are cancelled at once; running jobs are interrupted by their worker.

    The job's creator may cancel it, and so may org admins.
    """
    record = await get_job(session, principal, job_id, for_update=True)
    if record.created_by != principal.id and not principal.can("org:write"):
        raise Forbidden("Only the job's creator or an org admin can cancel it")
    if JobStatus(record.status).finished:
        raise Conflict(f"The job already ended ({record.status})")
    raw = await (await session.connection()).get_raw_connection()
    assert record.procrastinate_id is not None
    await job_app.job_manager.cancel_job_by_id_async(
        record.procrastinate_id, abort=True, connection=raw.driver_connection
    )
    if record.status == JobStatus.QUEUED:
        record.status = JobStatus.CANCELLED
        record.finished_at = datetime.now(record.created_at.tzinfo)
        await end_cancelled(session, record)
    record.message = "cancellation requested"
    await record_audit(
        session,
        principal,
        "job.cancelled",
        "job",
        record.id,
        {"task": record.task, "status": record.status},
    )
    return JobOut.model_validate(record)
