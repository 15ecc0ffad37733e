"""Real worker processes: a worker killed mid-job loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from tests import jobs_fixtures
from tests.conftest import Tenant
from tests.core.jobs.test_jobs import principal_of
from touchstone.core.db import Database
from touchstone.core.jobs import JobRecord, defer
from touchstone.core.postgres import DatabaseUrls

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _start_worker(database_urls: DatabaseUrls) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_urls.admin.render_as_string(hide_password=False),
        "WORKER_HEARTBEAT_SECONDS": "0.5",
        "STALLED_WORKER_SECONDS": "3",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "touchstone.cli",
            "worker",
            "--queues",
            "cv",
            "--import",
            "tests.jobs_fixtures",
        ],
        env=env,
        cwd=ROOT,
    )


async def _wait_for(
    committed: Database, tenant: Tenant, job_id: uuid.UUID, status: str, within: float
) -> JobRecord:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with committed.transaction(org_id=tenant.org_id) as session:
            record = (
                await session.execute(select(JobRecord).where(JobRecord.id == job_id))
            ).scalar_one()
        if record.status == status:
            return record
        await asyncio.sleep(0.2)
    raise AssertionError(f"job stayed {record.status}, never {status}")


async def test_a_job_of_a_killed_worker_runs_again_on_another(
    committed: Database, tenant: Tenant, database_urls: DatabaseUrls
) -> None:
    async with committed.transaction(org_id=tenant.org_id) as session:
        record = await defer(session, principal_of(tenant), jobs_fixtures.sleeps, seconds=3)
    first = _start_worker(database_urls)
    second = None
    try:
        await _wait_for(committed, tenant, record.id, "running", within=60)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = _start_worker(database_urls)
        started = time.monotonic()
        done = await _wait_for(committed, tenant, record.id, "succeeded", within=60)
        assert done.attempts == 2
        assert done.result == {"slept": 3, "attempt": 2}
        assert time.monotonic() - started < 45
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(30)
