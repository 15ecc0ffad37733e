"""Benchmark job throughput: no-op jobs from defer to done, with one and with two workers.

The goal (from the issue): one `touchstone worker` process at concurrency 10 on the embedded
PostgreSQL runs at least 200 no-op jobs/s, every job going through our JobRecord row as in
production; two workers are measured in the same run, for the scaling ratio.

Run from the checkout: `python -m bench.jobs_throughput`; `--help` for options.
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from tests import jobs_fixtures

from bench.common import (
    READY_TIMEOUT_S,
    RESULTS_DIR,
    ROOT,
    BenchError,
    Child,
    busy_between,
    busy_share,
    child_env,
    cpu_seconds,
    cpu_ticks,
    create_org,
    database_urls,
    describe_busy,
    finished_at,
    machine,
    run_main,
    say,
    scratch_dir,
    supervised,
    tail,
    verdict,
)
from touchstone.core.auth import system_principal
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.jobs import JobRecord, JobStatus, defer

RESULTS = RESULTS_DIR / "jobs_throughput.json"
GOAL_JOBS_PER_S = 200.0
TASKS_MODULE = jobs_fixtures.__name__
TASK = jobs_fixtures.noop
WORKER_COUNTS = (1, 2)
POLL_S = 0.05


@dataclass(frozen=True)
class Options:
    jobs: int
    batch: int
    concurrency: int


@dataclass(frozen=True)
class Drain:
    workers: int
    jobs: int
    defer_jobs_per_s: float
    startup_s: float
    """From launching the worker processes to all of them registered and waiting."""
    drain_s: float
    """From the release of the queue to the last job's `finished_at`."""
    worker_cpu_shares: list[float | None]
    machine_busy: float | None
    worker_exit_codes: list[int]

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.drain_s


async def _defer_all(database: Database, org_id: uuid.UUID, options: Options) -> float:
    """Queue the jobs as a request does (JobRecord + procrastinate row in one transaction),
    `batch` per transaction; returns the jobs deferred per second."""
    principal = system_principal(org_id)
    started = time.perf_counter()
    for first in range(0, options.jobs, options.batch):
        async with database.transaction(org_id=org_id) as session:
            for _ in range(min(options.batch, options.jobs - first)):
                await defer(session, principal, TASK)
    return options.jobs / (time.perf_counter() - started)


async def _last_worker_id(database: Database) -> int:
    async with database.transaction() as session:
        query = text("select coalesce(max(id), 0) from procrastinate_workers")
        last: int = (await session.execute(query)).scalar_one()
        return last


async def _wait_registered(database: Database, after_id: int, workers: list[Child]) -> None:
    """Until every worker has registered (then it waits on its first fetch)."""
    deadline = time.perf_counter() + READY_TIMEOUT_S
    query = text("select count(*) from procrastinate_workers where id > :after")
    while time.perf_counter() < deadline:
        for worker in workers:
            worker.check_running()
        async with database.transaction() as session:
            if (await session.execute(query, {"after": after_id})).scalar_one() >= len(workers):
                return
        await asyncio.sleep(POLL_S)
    raise BenchError(
        f"workers not registered after {READY_TIMEOUT_S:.0f} s:\n{tail(workers[0].log)}"
    )


async def _wait_done(
    database: Database, org_id: uuid.UUID, since: datetime, jobs: int, workers: list[Child]
) -> datetime:
    """Poll until every job deferred `since` succeeded; returns the last `finished_at`."""
    query = select(
        func.count().filter(JobRecord.status == JobStatus.SUCCEEDED),
        func.count().filter(JobRecord.status.in_([JobStatus.FAILED, JobStatus.CANCELLED])),
        func.max(JobRecord.finished_at),
    ).where(JobRecord.org_id == org_id, JobRecord.created_at >= since)
    deadline, succeeded = time.perf_counter() + max(60.0, jobs / 20), 0
    while time.perf_counter() < deadline:
        async with database.transaction(org_id=org_id) as session:
            succeeded, failed, last = (await session.execute(query)).one()
        if failed:
            raise BenchError(f"{failed} no-op jobs failed:\n{tail(workers[0].log)}")
        if succeeded == jobs and last is not None:
            return last
        for worker in workers:
            worker.check_running()
        await asyncio.sleep(POLL_S)
    raise BenchError(f"only {succeeded} of {jobs} jobs done in time:\n{tail(workers[0].log)}")


async def _drain(
    database: Database,
    org_id: uuid.UUID,
    env: dict[str, str],
    data_dir: Path,
    workers: int,
    options: Options,
) -> Drain:
    """Defer the jobs, then let `workers` processes drain the queue, started as one.

    Worker start-up (interpreter, imports, migrations check) takes seconds and would be
    counted unevenly, so the queue table is locked while they start: each worker registers,
    then blocks on its first fetch, and all begin together when the lock goes.
    """
    since = datetime.now(UTC)
    say(f"deferring {options.jobs} jobs in transactions of {options.batch}")
    defer_rate = await _defer_all(database, org_id, options)
    command = [
        sys.executable,
        "-m",
        "touchstone.cli",
        "worker",
        "--queues",
        TASK.queue,
        "--concurrency",
        str(options.concurrency),
        "--import",
        TASKS_MODULE,
    ]
    worker_env = {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    }
    last_worker_id = await _last_worker_id(database)
    with contextlib.ExitStack() as stack:
        async with database.transaction() as hold:
            await hold.execute(text("lock table procrastinate_jobs in exclusive mode"))
            say(f"starting {workers} worker(s) with the queue held")
            launched = time.perf_counter()
            children = [
                stack.enter_context(
                    supervised(
                        Child(
                            f"worker {n}",
                            command,
                            worker_env,
                            data_dir,
                            data_dir / f"worker-{workers}-{n}.log",
                        )
                    )
                )
                for n in range(1, workers + 1)
            ]
            await _wait_registered(database, last_worker_id, children)
            startup_s = time.perf_counter() - launched
            cpu_before = [cpu_seconds(c.process.pid) for c in children]
            ticks_before = cpu_ticks()
            released = datetime.now(UTC)  # before the commit, so no job can start earlier
        say("queue released; draining")
        last_finished = await _wait_done(database, org_id, since, options.jobs, children)
        cpu_after = [cpu_seconds(c.process.pid) for c in children]
        ticks_after = cpu_ticks()
        drain_s = (last_finished - released).total_seconds()
        exit_codes = [child.stop() for child in children]
    return Drain(
        workers=workers,
        jobs=options.jobs,
        defer_jobs_per_s=defer_rate,
        startup_s=startup_s,
        drain_s=drain_s,
        worker_cpu_shares=[
            None if b is None or a is None else (a - b) / drain_s
            for b, a in zip(cpu_before, cpu_after, strict=True)
        ],
        machine_busy=busy_between(ticks_before, ticks_after),
        worker_exit_codes=exit_codes,
    )


async def _drain_each(
    settings: Settings,
    runtime: URL,
    org_id: uuid.UUID,
    env: dict[str, str],
    data_dir: Path,
    options: Options,
) -> list[Drain]:
    database = Database(runtime, settings)
    try:
        return [
            await _drain(database, org_id, env, data_dir, workers, options)
            for workers in WORKER_COUNTS
        ]
    finally:
        await database.dispose()


@dataclass(frozen=True)
class Report:
    options: Options
    busy_before: float | None
    drains: list[Drain]
    finished: str

    @property
    def one(self) -> Drain:
        return self.drains[0]

    @property
    def scaling(self) -> float:
        return self.drains[1].jobs_per_s / self.one.jobs_per_s

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            "one_worker": self.one.jobs_per_s >= GOAL_JOBS_PER_S,
            "workers_stopped": all(
                code == 0 for drain in self.drains for code in drain.worker_exit_codes
            ),
        }

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": machine(self.busy_before),
            "task": TASK.name,
            "options": asdict(self.options),
            "runs": [{**asdict(d), "jobs_per_s": round(d.jobs_per_s, 1)} for d in self.drains],
            "goal_one_worker_jobs_per_s": GOAL_JOBS_PER_S,
            "scaling_two_over_one": round(self.scaling, 3),
            "pass": self.verdicts,
        }

    def table(self) -> str:
        passed = self.verdicts
        rows = [
            f"no-op jobs ({TASK.name}) from defer to done: `touchstone worker --queues "
            f"{TASK.queue} --concurrency {self.options.concurrency}`, embedded PostgreSQL",
            f"machine: {os.cpu_count()} CPUs, {describe_busy(self.busy_before)} busy just "
            "before the run",
            f"each run: {self.options.jobs} jobs deferred first (JobRecord + procrastinate row, "
            f"{self.options.batch} per transaction), then drained by the workers, started as one",
            "",
            f"{'':<11}{'jobs/s':>9}{'drain s':>9}{'defer/s':>9}{'start s':>9}"
            f"{'worker CPU':>14}{'all CPUs':>10}  goal",
        ]
        for drain in self.drains:
            shares = "+".join(describe_busy(s) for s in drain.worker_cpu_shares)
            goal = (
                f">= {GOAL_JOBS_PER_S:.0f}  {verdict(passed['one_worker'])}"
                if drain is self.one
                else "(none)"
            )
            rows.append(
                f"{f'{drain.workers} worker' + 's' * (drain.workers > 1):<11}"
                f"{drain.jobs_per_s:>9,.1f}{drain.drain_s:>9.2f}{drain.defer_jobs_per_s:>9,.0f}"
                f"{drain.startup_s:>9.2f}{shares:>14}{describe_busy(drain.machine_busy):>10}"
                f"  {goal}"
            )
        rows += [
            f"scaling 2 workers / 1 worker: {self.scaling:.2f}x (no goal; {os.cpu_count()} "
            "CPUs are shared by the workers and PostgreSQL, see 'all CPUs')",
            "(jobs/s: jobs over the time from the queue's release to the last job's finished_at;"
            " start s: launch to registered, not counted; worker CPU: share of one core)",
            f"workers stopped on SIGINT with exit 0: {verdict(passed['workers_stopped'])}",
        ]
        return "\n".join(rows)


def run(options: Options) -> Report:
    busy_before = busy_share()
    with scratch_dir() as data_dir:
        env = child_env(data_dir)
        say(f"starting the embedded PostgreSQL in {data_dir} (initdb and migrations)")
        with database_urls(env) as (settings, urls):
            org_id = create_org(
                env,
                data_dir,
                name="Bench Jobs",
                slug="bench-jobs",
                admin_email="admin@bench.example.com",
                password=secrets.token_urlsafe(16),
            )
            drains = asyncio.run(
                _drain_each(settings, urls.runtime, org_id, env, data_dir, options)
            )
    return Report(options, busy_before, drains, finished_at())


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.jobs_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per run (default 2000)")
    parser.add_argument(
        "--batch", type=int, default=100, help="jobs deferred per transaction (default 100)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=10, help="jobs each worker runs at once (default 10)"
    )
    args = parser.parse_args(argv)
    if min(args.jobs, args.batch, args.concurrency) < 1:
        parser.error("--jobs, --batch and --concurrency must be positive")
    return Options(args.jobs, args.batch, args.concurrency)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    return run_main(lambda: run(options), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
