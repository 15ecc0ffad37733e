"""What every benchmark shares, so each one measures under the same rules.

A throw-away data directory and free ports (a developer's `var/` and port 8000 are never
touched); children that get only our settings and run in their own session, so Ctrl-C
reaches the benchmark alone, which stops them in order; the CLI and sign-in used to seed;
CPU sampling; the built-in HTTP load generator; and the exit status every benchmark keeps:
0 every goal met, 1 a goal missed, 2 could not run, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from touchstone.core.config import Settings
from touchstone.core.postgres import DatabaseUrls, prepare_database, stop_embedded_servers

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
HOST = "127.0.0.1"
READY_PATH = "/health/ready"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
SERVE = [sys.executable, "-m", "touchstone.cli", "serve"]
# Load from one client and one principal: the rate limits still count each request (that
# work is part of a real request) but are raised so that none is refused.
UNREFUSED_LIMIT = "100000000/minute"
RATE_LIMITS = {"RATE_LIMIT_DEFAULT": UNREFUSED_LIMIT, "RATE_LIMIT_PER_IP": UNREFUSED_LIMIT}
# `serve` without the job worker beside it, for benchmarks that run no jobs: an idle worker
# would still poll and take CPU from what is measured.
NO_WORKER = {"RUN_WORKER_WITH_API": "false", "HEALTH_REQUIRES_WORKER": "false"}


class BenchError(Exception):
    """The benchmark could not produce a trustworthy figure (exit status 2)."""


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


# --- child processes ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Child:
    """A process in its own session: Ctrl-C reaches only the benchmark, which then stops each
    child in order (so `touchstone serve` can stop its PostgreSQL on the way out)."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path, log: Path
    ) -> None:
        self.name, self.log = name, log
        self.started = time.perf_counter()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self.process.returncode}:\n{tail(self.log)}"
            )

    def stop(self) -> int:
        """SIGINT, as Ctrl-C on `make run` sends; SIGKILL only if it hangs. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def outlived(self) -> bool:
        """Whether a process it started (`touchstone serve` starts a job worker) is still up."""
        try:
            os.killpg(self.process.pid, 0)  # its session's group, which its children share
        except ProcessLookupError:
            return False
        return True


class Server(Child):
    """A child serving HTTP on a free port, ready once `ready_path` answers 200."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
        log: Path,
        ready_path: str,
    ) -> None:
        self.port = free_port()
        self.ready_path = ready_path
        super().__init__(name, command, {**env, "PORT": str(self.port)}, cwd, log)

    def wait_ready(self) -> float:
        """Seconds from launch (interpreter start included) to the first 200 on ready_path."""
        while time.perf_counter() - self.started < READY_TIMEOUT_S:
            self.check_running()
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_request(self.port, "GET", self.ready_path)[0] == 200:
                    return time.perf_counter() - self.started
            time.sleep(0.05)
        raise BenchError(f"{self.name} not ready after {READY_TIMEOUT_S:.0f} s:\n{tail(self.log)}")


ChildT = TypeVar("ChildT", bound=Child)


@contextlib.contextmanager
def supervised(child: ChildT) -> Iterator[ChildT]:
    """Stop the child on the way out, whatever happened, and anything it left behind."""
    try:
        yield child
    finally:
        child.stop()
        if child.outlived():
            os.killpg(child.process.pid, signal.SIGKILL)


def serving(
    name: str, command: list[str], env: dict[str, str], cwd: Path, log: Path, ready_path: str
) -> contextlib.AbstractContextManager[Server]:
    return supervised(Server(name, command, env, cwd, log, ready_path))


def postmaster_pid(data_dir: Path) -> int | None:
    """The embedded PostgreSQL still running on `data_dir`, if any.

    PostgreSQL removes postmaster.pid on a clean stop; a file whose process is gone is a crash.
    """
    try:
        pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, but runs as another user
        pass
    return pid


def _stop_leftover_postgres(data_dir: Path) -> None:
    """Stop a PostgreSQL our children left behind (e.g. a CLI killed mid-way kept its handle)."""
    for sig in (signal.SIGINT, signal.SIGQUIT):  # PostgreSQL's "fast", then "immediate" stop
        pid = postmaster_pid(data_dir)
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + 15
        while postmaster_pid(data_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.1)


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A throw-away DATA_DIR, so a developer's var/pgdata is never touched."""
    path = Path(tempfile.mkdtemp(prefix="touchstone-bench-"))
    path.chmod(0o755)  # as root, PostgreSQL runs as the user `pgserver`, which must traverse it
    try:
        yield path
    finally:
        _stop_leftover_postgres(path)
        shutil.rmtree(path, ignore_errors=True)


def child_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our settings only: inherited ones (DATABASE_URL, OTEL_*, CORS_ORIGINS…) would change
    what is measured. Children also run outside the checkout, so its `.env` is not read.

    `extra` holds further settings a benchmark needs (rate limits…), checked to still exist.
    """
    settings = {name.upper() for name in Settings.model_fields}
    extra = extra or {}
    if renamed := extra.keys() - settings:
        raise BenchError(f"{', '.join(sorted(renamed))}: no longer settings; update the bench")
    env = {key: value for key, value in os.environ.items() if key.upper() not in settings}
    return {
        **env,
        "DATA_DIR": str(data_dir),
        "HOST": HOST,
        "LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "production",  # as deployed: cached loggers, no docs
        "PUBLIC_URL": f"http://{HOST}",  # production requires it; no bench follows a link
        "SECRET_KEY": secrets.token_urlsafe(48),
        **extra,
    }


class _GivenOnly(Settings):
    """Settings from the values given alone: this process's environment and `.env` are not
    read, so the benchmark sees exactly what its children see."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@contextlib.contextmanager
def database_urls(env: dict[str, str]) -> Iterator[tuple[Settings, DatabaseUrls]]:
    """The children's settings and database, for this process to publish or queue work.

    Starts the embedded PostgreSQL on DATA_DIR, or attaches to the one a child started (the
    server stops when the last process holding it lets go); lets go on the way out. Must be
    entered outside an event loop (migrations run their own).
    """
    given: dict[str, Any] = {
        k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields
    }
    settings = _GivenOnly(**given)
    try:
        yield settings, prepare_database(settings)
    finally:
        stop_embedded_servers()


# --- seed data ----------------------------------------------------------------------------


def expect(status: int, wanted: int, body: bytes, what: str) -> None:
    if status != wanted:
        raise BenchError(f"{what}: HTTP {status}, expected {wanted}: {body[:500]!r}")


_ORG_CREATED = re.compile(r"^org \S+ \(([0-9a-f-]{36})\) created", re.MULTILINE)


def create_org(
    env: dict[str, str], cwd: Path, *, name: str, slug: str, admin_email: str, password: str
) -> uuid.UUID:
    """An org and its admin through `touchstone orgs create`, which attaches to the running
    embedded PostgreSQL (as an operator would); returns the org's id."""
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "touchstone.cli",
            "orgs",
            "create",
            name,
            "--slug",
            slug,
            "--admin-email",
            admin_email,
            "--admin-password",
            password,
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    found = _ORG_CREATED.search(created.stdout)
    if created.returncode != 0 or found is None:
        raise BenchError(f"touchstone orgs create failed:\n{created.stdout}{created.stderr}")
    return uuid.UUID(found[1])


def sign_in(port: int, email: str, password: str, org_slug: str) -> str:
    """An access token from `POST /api/v1/auth/token`, as a client would get one."""
    form = urllib.parse.urlencode({"username": email, "password": password, "org": org_slug})
    status, body = http_request(
        port,
        "POST",
        "/api/v1/auth/token",
        body=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    expect(status, 200, body, "sign in")
    token: str = json.loads(body)["access_token"]
    return token


# --- measuring ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CpuTicks = tuple[int, int]


def cpu_ticks() -> CpuTicks | None:
    """Busy and total ticks of all CPUs so far (Linux /proc/stat; None elsewhere)."""
    try:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return None
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # minus idle and iowait


def busy_between(before: CpuTicks | None, after: CpuTicks | None) -> float | None:
    """How busy all CPUs were between two `cpu_ticks()` samples (1.0 = every core)."""
    if before is None or after is None:
        return None
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def busy_share(seconds: float = 2.0) -> float | None:
    """How busy all CPUs were just before the run: other work on the machine (a test
    suite…) lowers every figure, and those that need PostgreSQL's share of the CPUs more."""
    before = cpu_ticks()
    time.sleep(seconds)
    return busy_between(before, cpu_ticks())


def describe_busy(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def machine(busy_before: float | None) -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "busy_share_before": busy_before,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def finished_at() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def latency_summary(samples_ms: list[float]) -> dict[str, float]:
    """Mean, p50, p95, p99 and max in milliseconds (needs at least two samples)."""
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {
        "mean": round(statistics.fmean(samples_ms), 3),
        "p50": round(cuts[49], 3),
        "p95": round(cuts[94], 3),
        "p99": round(cuts[98], 3),
        "max": round(max(samples_ms), 3),
    }


# --- load -------------------------------------------------------------------------------

RequestFactory = Callable[[], bytes]
"""The next request, as raw HTTP/1.1 bytes: a write can send a distinct body each time."""

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def raw_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """One request on a keep-alive connection; Content-Length only when there is a body."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass(frozen=True)
class GeneratorRun:
    """What a closed loop of keep-alive connections got in one run."""

    latencies_s: list[float]
    elapsed_s: float
    failures: int
    """Answers with another status than the expected one (the latencies count them too)."""
    first_failure: bytes
    """The head and the start of the body of the first such answer, for the diagnosis."""

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed_s

    def percentile_ms(self, percent: int) -> float:
        return statistics.quantiles(self.latencies_s, n=100)[percent - 1] * 1000


async def _drive(
    port: int, next_request: RequestFactory, expected: bytes, deadline: float
) -> tuple[list[float], int, bytes]:
    """One keep-alive connection sending requests back to back."""
    reader, writer = await asyncio.open_connection(HOST, port)
    latencies: list[float] = []
    failures, first_failure = 0, b""
    try:
        while time.perf_counter() < deadline:
            request = next_request()
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _CONTENT_LENGTH.search(head)
            if length is None:
                raise BenchError(
                    "a response without Content-Length; the Python generator cannot read it: "
                    f"{head[:300]!r}"
                )
            body = await reader.readexactly(int(length[1]))
            latencies.append(time.perf_counter() - sent)
            if not head.startswith(expected):
                failures += 1
                first_failure = first_failure or head + body[:300]
    finally:
        writer.close()
        await writer.wait_closed()
    return latencies, failures, first_failure


async def _load_async(
    port: int, next_request: RequestFactory, connections: int, duration_s: float, status: int
) -> GeneratorRun:
    expected = f"HTTP/1.1 {status} ".encode()
    started = time.perf_counter()
    runs = await asyncio.gather(
        *(_drive(port, next_request, expected, started + duration_s) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    return GeneratorRun(
        [latency for latencies, _, _ in runs for latency in latencies],
        elapsed,
        sum(failures for _, failures, _ in runs),
        next((first for _, _, first in runs if first), b""),
    )


def python_load(
    port: int,
    next_request: RequestFactory,
    *,
    connections: int,
    duration_s: float,
    status: int = 200,
) -> GeneratorRun:
    """The built-in generator: `connections` keep-alive connections on one asyncio loop, each
    sending its next request as soon as the last is answered, for `duration_s`.

    It needs far more CPU per request than wrk, but takes a request factory, so writes can
    send a unique body or header each time; a server that drops a connection is an error.
    """
    try:
        return asyncio.run(_load_async(port, next_request, connections, duration_s, status))
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise BenchError(f"the server dropped a connection: {exc!r}") from exc


# --- the run ------------------------------------------------------------------------------


class Outcome(Protocol):
    @property
    def verdicts(self) -> dict[str, bool]: ...

    def table(self) -> str: ...

    def to_json(self) -> dict[str, object]: ...


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every child is stopped. It goes through the current
    SIGINT handler: inside `asyncio.run` that one cancels the running task cleanly."""
    on_interrupt = signal.getsignal(signal.SIGINT)
    if not callable(on_interrupt):  # SIGINT ignored (a background job): unwind all the same
        raise KeyboardInterrupt
    on_interrupt(signal.SIGINT, frame)


def run_main(run: Callable[[], Outcome], results: Path) -> int:
    """Run, print the table, write the JSON; the exit status says whether every goal was met."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        outcome = run()
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the processes this benchmark started are stopped", file=sys.stderr)
        return 130
    except Exception:  # a client or database error: no figure, but not a missed goal either
        traceback.print_exc()
        print("benchmark failed (see the traceback above)", file=sys.stderr)
        return 2
    print(outcome.table())
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(outcome.to_json(), indent=2) + "\n")
    print(f"results: {results.relative_to(ROOT)}")
    return 0 if all(outcome.verdicts.values()) else 1
