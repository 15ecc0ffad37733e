"""The worker process: runs jobs, beats its heart, and rescues jobs of dead workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from typing import Any

import structlog
from procrastinate import PsycopgConnector
from sqlalchemy.engine import URL

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.jobs.runtime import QUEUES, JobFailed, job_app
from touchstone.core.postgres import libpq_dsn

log = structlog.get_logger("touchstone.worker")
WORKER_RESTART_DELAY_S = 1.0


class _EndedJobsWithoutTraceback(logging.Filter):
    """procrastinate logs a failed job with its exception's traceback. A `JobFailed` was
    logged once already, by the job itself, with the traceback when it was a bug: here
    the line stays (procrastinate's own record of the outcome) and the traceback goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], JobFailed):
            record.exc_info = record.exc_text = None
        return True


_PROCRASTINATE_WORKER_LOG = logging.getLogger("procrastinate.worker")
_ENDED_JOBS_FILTER = _EndedJobsWithoutTraceback()


def job_connector(url: URL, max_size: int) -> PsycopgConnector:
    return PsycopgConnector(
        conninfo=libpq_dsn(url),
        min_size=1,
        max_size=max_size,
        kwargs={"application_name": "touchstone-worker"},
    )


async def recover_stalled_jobs(settings: Settings) -> int:
    """Put the running jobs of workers whose heartbeat stopped (e.g. SIGKILL) back in line."""
    stalled = list(
        await job_app.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=settings.stalled_worker_seconds
        )
    )
    for job in stalled:
        log.warning("stalled_job_retried", procrastinate_id=job.id, task=job.task_name)
        await job_app.job_manager.retry_job(job)
    return len(stalled)


async def _recover_forever(settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.worker_heartbeat_seconds)
        try:
            await recover_stalled_jobs(settings)
        except Exception as exc:  # the database may be restarting; try again next beat
            log.warning("stalled_job_recovery_failed", error=type(exc).__name__)


async def _work_until_stopped(
    options: dict[str, Any], handle_signals: bool, stop_with_pid: int | None
) -> None:
    """Run procrastinate's worker again whenever it stops on its own.

    It stops (returning normally) when its listener or heartbeat loses the database, e.g.
    while PostgreSQL restarts; without this the process would sit idle with jobs queued.
    Only SIGINT, SIGTERM, SIGHUP (or cancelling this task) end the loop, letting running jobs
    finish; the process then exits normally, so it detaches from the embedded database.
    So does the end of process `stop_with_pid` (the server that started this worker, even
    when it was killed outright): a worker never outlives its server, nor keeps the embedded
    database running for nobody.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stopping.set)
    if stop_with_pid is not None and hasattr(os, "pidfd_open"):  # Linux
        try:
            # readable when the process ends: no polling
            loop.add_reader(os.pidfd_open(stop_with_pid), stopping.set)
        except ProcessLookupError:
            return
    while not stopping.is_set():
        worker = asyncio.create_task(job_app.run_worker_async(**options))
        stop = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({worker, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not worker.done():
                worker.cancel()  # procrastinate stops gracefully: running jobs finish first
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        if stopping.is_set():
            return
        error = worker.exception()
        log.warning("worker_restarting", error=type(error).__name__ if error else None)
        await asyncio.sleep(WORKER_RESTART_DELAY_S)


async def run_worker(
    settings: Settings,
    runtime_url: URL,
    *,
    queues: list[str] | None = None,
    concurrency: int = 10,
    wait: bool = True,
    handle_signals: bool = True,
    stop_with_pid: int | None = None,
) -> None:
    """Run jobs until stopped (a signal, or the end of process `stop_with_pid`), or until the
    queues are empty if not `wait`."""
    unknown = set(queues or ()) - set(QUEUES)
    if unknown:
        raise ValueError(f"unknown queues {sorted(unknown)}; choose from {QUEUES}")
    _PROCRASTINATE_WORKER_LOG.addFilter(_ENDED_JOBS_FILTER)  # a no-op the second time
    database = Database(runtime_url, settings)
    name = f"{socket.gethostname()}-{id(database):x}"
    options: dict[str, Any] = {
        "queues": list(queues or QUEUES),
        "concurrency": concurrency,
        "name": name,
        "wait": wait,
        "additional_context": {"database": database, "settings": settings},
        "update_heartbeat_interval": settings.worker_heartbeat_seconds,
        "stalled_worker_timeout": settings.stalled_worker_seconds,
        "delete_jobs": "successful",
        "install_signal_handlers": False,
    }
    with job_app.replace_connector(job_connector(runtime_url, concurrency + 4)):
        async with job_app.open_async():
            recovery = asyncio.create_task(_recover_forever(settings))
            try:
                if wait:
                    await _work_until_stopped(options, handle_signals, stop_with_pid)
                else:
                    await job_app.run_worker_async(**options)
            finally:
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery
                await database.dispose()
