"""Defining, deferring and running jobs; every job runs inside its org's RLS context.

Every tenant job declares, with `@job`, what a caller needs to read its status (core serves
`/api/v1/jobs/{id}` for every module but imports none) and, when it works on a module's
objects, an `on_end` hook that puts them in a final state when the job ends for good:
failed after its last attempt, failed at once on a permanent error, cancelled, or given up
after its runs kept dying with their worker. Nothing a job works on stays `processing`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from procrastinate import (
    App,
    BaseRetryStrategy,
    JobContext,
    PsycopgConnector,
    RetryDecision,
    RetryStrategy,
)
from procrastinate.job_context import AbortReason
from procrastinate.jobs import Job
from procrastinate.tasks import Task
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.errors import AppError
from touchstone.core.jobs.models import JobRecord, JobStatus

QUEUES = ("default", "cv", "documents", "reports")
log = structlog.get_logger("touchstone.jobs")

# Tasks bind to this app at import time; processes swap in a real connector when they start
# (`with job_app.replace_connector(...)`), and requests defer on their own connection.
job_app = App(connector=PsycopgConnector(), import_paths=["touchstone.tasks_registry"])

JobResult = dict[str, Any] | None
JobFunction = Callable[..., Awaitable[JobResult]]
"""`async def f(run: JobRun, **ids) -> dict | None`; the dict is stored as the result."""
JobEndHook = Callable[..., Awaitable[None]]
"""`async def f(session, org_id, problem, **ids)`: in the job's tenant, leave the job's
objects in a final state that says why (`problem` is what the job API shows as `error`)."""
JobVisibility = Callable[[AsyncSession, Principal, Mapping[str, Any]], Awaitable[bool]]
"""(session in the caller's tenant, caller, the job's arguments) -> may the caller see it?"""
MAX_BACKOFF_SECONDS = 6 * 3600


@dataclass(frozen=True, slots=True)
class JobKind:
    """What the module that defines a task says about its jobs."""

    read_permission: str
    visible: JobVisibility | None
    on_end: JobEndHook | None


JOB_KINDS: dict[str, JobKind] = {}
"""Task name -> its kind, filled by `@job`. A job record of a task not in here (its module
is not loaded, or it was renamed) is nobody's: the job API does not show it."""


async def may_read_job(session: AsyncSession, principal: Principal, record: JobRecord) -> bool:
    kind = JOB_KINDS.get(record.task)
    if kind is None or not principal.can(kind.read_permission):
        return False
    return kind.visible is None or await kind.visible(session, principal, record.arguments)


class JobFailed(Exception):
    """A job ended for good (its objects are final, its record says why): never retried.

    Raised to procrastinate only so that its own table says `failed` too; the failure was
    already logged once, so the worker's log filter drops its traceback."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(f"{problem['code']}: {problem.get('detail') or problem['title']}")
        self.problem = problem


class _RetryUntilEnded(BaseRetryStrategy):
    """The wrapper in `job` decides when a job ends (it raises `JobFailed`); any other
    exception is a failed attempt, retried after `backoff ** n` seconds."""

    def __init__(self, backoff_seconds: int) -> None:
        self.backoff_seconds = backoff_seconds

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, JobFailed):
            return None
        if isinstance(exception, asyncio.CancelledError):
            # The worker is shutting down (a cancelled job is failed by procrastinate itself,
            # whatever this says): run it again as soon as a worker is free.
            return RetryDecision(retry_in={"seconds": 0})
        wait = min(self.backoff_seconds ** ((job.attempts or 0) + 1), MAX_BACKOFF_SECONDS)
        return RetryDecision(retry_in={"seconds": wait})


@dataclass
class JobRun:
    """What a running job gets: its org's database context and a way to report progress."""

    database: Database
    settings: Settings
    """The worker's settings (not the process-wide cached ones: a test's worker has its own)."""
    org_id: uuid.UUID
    job_id: uuid.UUID
    attempt: int
    context: JobContext

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self.database.transaction(org_id=self.org_id)

    async def progress(self, percent: int, message: str | None = None) -> None:
        await _update(
            self.context,
            self.org_id,
            self.job_id,
            progress=max(0, min(100, percent)),
            message=message,
        )


async def _update(context: JobContext, org_id: uuid.UUID, job_id: uuid.UUID, **values: Any) -> None:
    """Write a job's status on the worker's own psycopg pool, in the job's RLS context.

    This runs twice per job, so it skips the ORM session (~2.4 ms against ~0.8 ms here) and
    the wait for the WAL flush: status is bookkeeping, and a crash that loses the last update
    only re-runs or re-reports the job.
    """
    columns = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in values
    )
    params = {name: Jsonb(v) if isinstance(v, dict) else v for name, v in values.items()}
    pool = context.app.connector.pool  # type: ignore[attr-defined]
    async with pool.connection() as connection, connection.transaction():
        await connection.execute(
            "select set_config('app.org_id', %s, true),"
            " set_config('synchronous_commit', 'off', true)",
            (str(org_id),),
        )
        await connection.execute(
            sql.SQL("update jobs set {} where id = %(job_id)s and org_id = %(org_id)s").format(
                columns
            ),
            {**params, "job_id": job_id, "org_id": org_id},
        )


_RETRYABLE_CLIENT_ERRORS = frozenset({408, 409, 423, 425, 429})


def is_permanent(exc: BaseException) -> bool:
    """Whether running the job again cannot change the answer: the input itself is wrong
    (a 4xx `AppError`: corrupt file, object gone, quota). 5xx errors (storage full, a
    dependency down), timeouts and unexpected exceptions are worth another attempt."""
    return (
        isinstance(exc, AppError)
        and 400 <= exc.status < 500
        and exc.status not in _RETRYABLE_CLIENT_ERRORS
    )


def _problem(exc: BaseException) -> dict[str, Any]:
    """The failure as problem details the tenant can read (no stack trace)."""
    if isinstance(exc, AppError):
        return {"status": exc.status, "code": exc.code, "title": exc.title, "detail": exc.detail}
    if isinstance(exc, TimeoutError):
        return {"status": 504, "code": "job_timeout", "title": "The job took too long"}
    return {
        "status": 500,
        "code": "job_failed",
        "title": "The job failed",
        "detail": f"{type(exc).__name__}: {exc}"[:500],
    }


def job(
    *,
    read_permission: str,
    queue: str = "default",
    max_attempts: int = 3,
    timeout_seconds: float = 300,
    backoff_seconds: int = 2,
    name: str | None = None,
    on_end: JobEndHook | None = None,
    visible: JobVisibility | None = None,
) -> Callable[[JobFunction], Task[Any, Any, Any]]:
    """Register a tenant job: retried with exponential backoff, bounded in time.

    Attempt n waits about `backoff_seconds ** n` seconds; after `max_attempts` runs, or at
    once on a permanent error (`is_permanent`), the job ends `failed` with its error visible
    through the job API, and `on_end` puts its objects in a final state. `read_permission`
    (and `visible`, for jobs on branch-bound objects) decide who may read its status.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; choose from {QUEUES}")

    def register(func: JobFunction) -> Task[Any, Any, Any]:
        async def run(context: JobContext, /, *, job_id: str, org_id: str, **kwargs: Any) -> None:
            database: Database = context.additional_context["database"]
            attempt = (context.job.attempts or 0) + 1
            job_uuid, org_uuid = uuid.UUID(job_id), uuid.UUID(org_id)
            ending = _Ending(context, database, org_uuid, job_uuid, on_end, kwargs)
            structlog.contextvars.bind_contextvars(job_id=job_id, org_id=org_id, task=run_name)
            try:
                if attempt > max_attempts:  # its runs died with their worker (stall recovery)
                    log.error("job_given_up", attempt=attempt)
                    problem = {
                        "status": 500,
                        "code": "job_interrupted",
                        "title": "The job kept stopping before it finished",
                        "detail": f"{attempt - 1} runs ended without an outcome",
                    }
                    await ending.end(JobStatus.FAILED, problem)
                    raise JobFailed(problem)
                await _update(
                    context,
                    org_uuid,
                    job_uuid,
                    status=JobStatus.RUNNING,
                    attempts=attempt,
                    started_at=datetime.now(UTC),
                    error=None,
                )
                settings: Settings = context.additional_context["settings"]
                job_run = JobRun(database, settings, org_uuid, job_uuid, attempt, context)
                result = await _attempt(func, job_run, kwargs, timeout_seconds, ending)
            except JobFailed:
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                final = is_permanent(exc) or attempt >= max_attempts
                problem = _problem(exc)
                log.warning(
                    "job_attempt_failed",
                    attempt=attempt,
                    final=final,
                    error=type(exc).__name__,
                    code=problem["code"],
                    # A bug deserves its traceback, once; an expected failure does not.
                    exc_info=final and not isinstance(exc, AppError),
                )
                if not final:
                    await _update(
                        context,
                        org_uuid,
                        job_uuid,
                        status=JobStatus.RETRYING,
                        error=problem,
                        finished_at=None,
                    )
                    raise
                await ending.end(JobStatus.FAILED, problem)
                raise JobFailed(problem) from None
            finally:
                structlog.contextvars.unbind_contextvars("job_id", "org_id", "task")
            await _update(
                context,
                org_uuid,
                job_uuid,
                status=JobStatus.SUCCEEDED,
                progress=100,
                result=result,
                finished_at=datetime.now(UTC),
            )

        run_name = name or f"{func.__module__}.{func.__name__}"
        if run_name in JOB_KINDS:
            raise ValueError(f"two jobs are named {run_name!r}")
        JOB_KINDS[run_name] = JobKind(read_permission, visible, on_end)
        task: Task[Any, Any, Any] = job_app.task(
            name=run_name,
            queue=queue,
            pass_context=True,
            retry=_RetryUntilEnded(backoff_seconds),
        )(run)
        return task

    return register


CANCELLED = {"status": 409, "code": "job_cancelled", "title": "The job was cancelled"}


@dataclass(frozen=True)
class _Ending:
    """How one run ends its job for good: the module's hook first, then the job's record."""

    context: JobContext
    database: Database
    org_id: uuid.UUID
    job_id: uuid.UUID
    on_end: JobEndHook | None
    arguments: dict[str, Any]

    async def end(self, status: JobStatus, problem: dict[str, Any]) -> None:
        if self.on_end is not None:
            try:
                async with self.database.transaction(org_id=self.org_id) as session:
                    await self.on_end(session, self.org_id, problem, **self.arguments)
            except Exception:  # a bug in the hook: say so loudly, still end the job
                log.exception("job_end_hook_failed", code=problem["code"])
        said = {"error": problem} if status == JobStatus.FAILED else {"message": problem["title"]}
        await _update(
            self.context,
            self.org_id,
            self.job_id,
            status=status,
            finished_at=datetime.now(UTC),
            **said,
        )


async def _attempt(
    func: JobFunction,
    job_run: JobRun,
    arguments: dict[str, Any],
    timeout_seconds: float,
    ending: _Ending,
) -> JobResult:
    """One run of the job's function; a cancellation ends the job, a shutdown does not."""
    try:
        async with asyncio.timeout(timeout_seconds):
            return await func(job_run, **arguments)
    except asyncio.CancelledError:
        if ending.context.abort_reason() == AbortReason.SHUTDOWN:
            await asyncio.shield(
                _update(
                    ending.context,
                    ending.org_id,
                    ending.job_id,
                    status=JobStatus.RETRYING,
                    message="the worker stopped; the job runs again",
                )
            )
        else:
            await asyncio.shield(ending.end(JobStatus.CANCELLED, CANCELLED))
        raise


async def end_cancelled(session: AsyncSession, record: JobRecord) -> None:
    """A queued job cancelled before it ran: its objects end as a run's would have."""
    kind = JOB_KINDS.get(record.task)
    if kind is not None and kind.on_end is not None:
        await kind.on_end(session, record.org_id, CANCELLED, **record.arguments)


def system_job(
    *, cron: str | None = None, queue: str = "default", name: str | None = None
) -> Callable[[Callable[[Database], Awaitable[None]]], Task[Any, Any, Any]]:
    """A maintenance job with no tenant (purges, recovery); `cron` makes it periodic."""

    def register(func: Callable[[Database], Awaitable[None]]) -> Task[Any, Any, Any]:
        async def run(context: JobContext, /, **_: Any) -> None:
            await func(context.additional_context["database"])

        task: Task[Any, Any, Any] = job_app.task(
            name=name or f"{func.__module__}.{func.__name__}", queue=queue, pass_context=True
        )(run)
        if cron:
            job_app.periodic(cron=cron)(task)
        return task

    return register


PlatformJobFunction = Callable[..., Awaitable[None]]
"""`async def f(database, settings, **arguments)`: no tenant, no job record."""


def platform_job(
    *, retries: int, backoff_seconds: int = 2, queue: str = "default", name: str | None = None
) -> Callable[[PlatformJobFunction], Task[Any, Any, Any]]:
    """A job that starts with no tenant: a request that must look across tenants before it
    knows one (a password reset names an email, not an org) hands the rest of its work here,
    so it answers alike whatever the lookup would find. A failed run is tried again up to
    `retries` times, about `backoff_seconds ** n` seconds apart. It has no job record (no
    tenant may read it); the tenant work it starts is deferred as ordinary `job`s."""

    def register(func: PlatformJobFunction) -> Task[Any, Any, Any]:
        async def run(context: JobContext, /, **arguments: Any) -> None:
            extra = context.additional_context
            await func(extra["database"], extra["settings"], **arguments)

        task: Task[Any, Any, Any] = job_app.task(
            name=name or f"{func.__module__}.{func.__name__}",
            queue=queue,
            pass_context=True,
            retry=RetryStrategy(max_attempts=retries, exponential_wait=backoff_seconds),
        )(run)
        return task

    return register


async def defer_platform_job(
    session: AsyncSession, task: Task[Any, Any, Any], **arguments: str | int | None
) -> None:
    """Queue a `platform_job` in the caller's transaction (arguments: no plaintext secrets
    or personal data; seal them)."""
    raw = await (await session.connection()).get_raw_connection()
    await task.configure(connection=raw.driver_connection).defer_async(**arguments)


async def defer(
    session: AsyncSession,
    principal: Principal,
    task: Task[Any, Any, Any],
    *,
    queue: str | None = None,
    **arguments: str | int | float | bool | None,
) -> JobRecord:
    """Queue `task` in the caller's transaction: no job without its row, no row without its job.

    Arguments travel through procrastinate's shared tables, so pass ids, never secrets
    or personal data.
    """
    record = JobRecord(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        task=task.name,
        queue=queue or task.queue,
        status=JobStatus.QUEUED,
        progress=0,
        attempts=0,
        created_by=principal.id,
        arguments=arguments,
    )
    session.add(record)
    await session.flush()
    raw = await (await session.connection()).get_raw_connection()
    record.procrastinate_id = await task.configure(
        connection=raw.driver_connection, queue=record.queue
    ).defer_async(job_id=str(record.id), org_id=str(principal.org_id), **arguments)
    return record
