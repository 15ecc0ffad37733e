"""Benchmark the tenant-scoped user list against a bare FastAPI endpoint, and time start-up.

The goals (from the issue): GET /api/v1/users?limit=20 with a JWT and row-level security,
served by `touchstone serve`, reaches at least 30% of the req/s of a bare FastAPI endpoint
returning the same JSON, both measured in one run with the same server settings and load
generator; and `touchstone serve` answers /health/ready with 200 in under 10 s.

Run from the checkout: `python -m bench.http_list` (`make bench`); `--help` for options.
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from bench.baseline_app import PAYLOAD_ENV
from bench.common import (
    HOST,
    RATE_LIMITS,
    READY_PATH,
    RESULTS_DIR,
    ROOT,
    SERVE,
    UNREFUSED_LIMIT,
    BenchError,
    Server,
    busy_share,
    child_env,
    cpu_seconds,
    create_org,
    expect,
    http_request,
    postmaster_pid,
    python_load,
    raw_request,
    run_main,
    say,
    scratch_dir,
    serving,
    sign_in,
)

RESULTS = RESULTS_DIR / "http_list.json"
LIST_PATH = "/api/v1/users?limit=20"
GOAL_RATIO = 0.30
STARTUP_LIMIT_S = 10.0
BUSY_WARNING = 0.15
"""Warn when the CPUs were busier than this before the run."""
SATURATED = 0.85
"""Warn when a server got less of a core than this under load."""
SERVER_SETTINGS = "uvicorn, 1 worker, log_config=None, access_log=False, LOG_LEVEL=WARNING"
ORG_SLUG = "bench-org"
EMAIL_DOMAIN = "bench.example.com"
WRK_INSTALL = (
    "apt-get install wrk (Debian/Ubuntu), dnf install wrk (Fedora), brew install wrk (macOS)"
)
BASELINE_KIND = (
    "bare FastAPI, no auth, no middleware, no database; a copy of the real page returned "
    "through a declared Pydantic response model mirroring Page[MemberOut] (FastAPI's "
    "response_model path, serialised by Pydantic straight to JSON bytes)"
)


@dataclass(frozen=True)
class Shutdown:
    exit_code: int
    children_stopped: bool
    postgres_stopped: bool

    @property
    def clean(self) -> bool:
        return self.exit_code == 0 and self.children_stopped and self.postgres_stopped


def _stop_and_check(server: Server, data_dir: Path) -> Shutdown:
    exit_code = server.stop()
    return Shutdown(exit_code, not server.outlived(), postmaster_pid(data_dir) is None)


# --- seed data ----------------------------------------------------------------------------


def _seed(port: int, env: dict[str, str], cwd: Path, users: int) -> tuple[str, bytes]:
    """An org, its admin and `users` members; returns the admin's JWT and the captured page.

    The org comes from the CLI (which attaches to the running embedded PostgreSQL); members
    come from the API, which is quicker than one CLI process each.
    """
    password = secrets.token_urlsafe(16)
    admin = f"admin@{EMAIL_DOMAIN}"
    create_org(env, cwd, name="Bench Org", slug=ORG_SLUG, admin_email=admin, password=password)
    auth = {"Authorization": f"Bearer {sign_in(port, admin, password, ORG_SLUG)}"}
    for number in range(1, users + 1):
        member = {
            "email": f"user{number:03d}@{EMAIL_DOMAIN}",
            "full_name": f"Bench User {number:03d}",
            "role": "viewer",
            "password": secrets.token_urlsafe(16),
        }
        status, body = http_request(
            port,
            "POST",
            "/api/v1/users",
            body=json.dumps(member).encode(),
            headers={**auth, "Content-Type": "application/json"},
        )
        expect(status, 201, body, f"create user {number}")
    status, page = http_request(port, "GET", LIST_PATH, headers=auth)
    expect(status, 200, page, "list users")
    data = json.loads(page)
    if len(data["items"]) != 20 or data["total"] <= 20:
        raise BenchError(f"expected a full page of 20 or more members, got {data}")
    return auth["Authorization"].removeprefix("Bearer "), page


# --- load generators ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadOptions:
    generator: str
    threads: int
    connections: int
    duration_s: int
    """Seconds measured per round and server."""
    warmup_s: int
    rounds: int

    def describe(self) -> str:
        tool = (
            "wrk" if self.generator == "wrk" else "built-in Python generator (asyncio, keep-alive)"
        )
        threads = self.threads if self.generator == "wrk" else 1
        return (
            f"{tool}, {threads} thread(s), {self.connections} connections, a {self.warmup_s} s "
            f"warm-up each, then {self.rounds} rounds of {self.duration_s} s each, alternating"
        )


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    server_cpu_ms: float | None = None
    """The server process's CPU time per request (Linux only)."""
    server_cpu_share: float | None = None
    """Its CPU time over the run's wall time: near 1.0 means the server, not the generator,
    was the limit (one worker uses one core)."""


LoadRun = Callable[[LoadOptions, int, dict[str, str], int], LoadResult]

_WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_WRK_PERCENTILE = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_WRK_FAILURES = re.compile(
    r"Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), "
    r"read (\d+), write (\d+), timeout (\d+)"
)
_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _failed(port: int, headers: dict[str, str], failures: int, detail: str = "") -> BenchError:
    """Failed requests make the figures wrong; one more request's answer says why."""
    status, body = http_request(port, "GET", LIST_PATH, headers=headers)
    return BenchError(
        f"{failures} failed requests (non-200 or socket errors); one more got HTTP {status}: "
        f"{body[:300]!r}\n{detail}"
    )


def _parse_wrk(output: str) -> tuple[LoadResult, int]:
    """wrk's summary and its failure count; p50/p99 come from the `--latency` distribution."""
    rate, total = _WRK_RATE.search(output), _WRK_TOTAL.search(output)
    percentiles = {
        p: float(value) * _TO_MS[unit] for p, value, unit in _WRK_PERCENTILE.findall(output)
    }
    if rate is None or total is None or percentiles.keys() != {"50", "99"}:
        raise BenchError(f"unexpected wrk output:\n{output}")
    failures = sum(int(n) for match in _WRK_FAILURES.findall(output) for n in match if n)
    result = LoadResult(float(rate[1]), percentiles["50"], percentiles["99"], int(total[1]))
    return result, failures


def _wrk(options: LoadOptions, port: int, headers: dict[str, str], duration_s: int) -> LoadResult:
    command = [
        "wrk",
        f"-t{options.threads}",
        f"-c{options.connections}",
        f"-d{duration_s}s",
        "--latency",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://{HOST}:{port}{LIST_PATH}")
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=duration_s + 60
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    result, failures = _parse_wrk(done.stdout)
    if failures:
        raise _failed(port, headers, failures, done.stdout)
    return result


def _python_load(
    options: LoadOptions, port: int, headers: dict[str, str], duration_s: int
) -> LoadResult:
    request = raw_request(port, "GET", LIST_PATH, headers)
    run = python_load(port, lambda: request, connections=options.connections, duration_s=duration_s)
    if run.failures:
        raise _failed(port, headers, run.failures)
    return LoadResult(
        run.requests_per_s, run.percentile_ms(50), run.percentile_ms(99), run.requests
    )


def _load(options: LoadOptions) -> LoadRun:
    return _wrk if options.generator == "wrk" else _python_load


def _measure(options: LoadOptions, server: Server, headers: dict[str, str]) -> LoadResult:
    """One measured run of `options.duration_s`, with the server's CPU time."""
    cpu_before, started = cpu_seconds(server.process.pid), time.perf_counter()
    result = _load(options)(options, server.port, headers, options.duration_s)
    cpu_after, elapsed = cpu_seconds(server.process.pid), time.perf_counter() - started
    if cpu_before is None or cpu_after is None:
        return result
    used = cpu_after - cpu_before
    return replace(
        result, server_cpu_ms=used * 1000 / result.requests, server_cpu_share=used / elapsed
    )


@dataclass(frozen=True)
class Round:
    baseline: LoadResult
    touchstone: LoadResult

    @property
    def ratio(self) -> float:
        return self.touchstone.requests_per_s / self.baseline.requests_per_s


def _alternate(
    options: LoadOptions, baseline: Server, touchstone: Server, headers: dict[str, str]
) -> list[Round]:
    """Warm both servers up (connection pool, lazy imports, caches), then measure them in
    short turns, round after round, each round in the other order than the one before. This
    machine's speed drifts by a tenth or more within seconds, so one long run of each would
    compare two different machines."""
    for server in (baseline, touchstone):
        _load(options)(options, server.port, headers, options.warmup_s)
    rounds = []
    for number in range(1, options.rounds + 1):
        if number % 2:
            first = _measure(options, baseline, headers)
            measured = Round(first, _measure(options, touchstone, headers))
        else:
            first = _measure(options, touchstone, headers)
            measured = Round(_measure(options, baseline, headers), first)
        say(f"round {number}/{options.rounds}: {measured.ratio:.1%}")
        rounds.append(measured)
    return rounds


def _combined(results: list[LoadResult]) -> LoadResult:
    """One server's rounds as one run: req/s, CPU per request and busy share over all of
    them; p50 and p99 are the medians of the rounds' own."""
    requests = sum(r.requests for r in results)
    seconds = sum(r.requests / r.requests_per_s for r in results)
    cpu = [r.server_cpu_ms * r.requests for r in results if r.server_cpu_ms is not None]
    shares = [r.server_cpu_share for r in results if r.server_cpu_share is not None]
    return LoadResult(
        requests / seconds,
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        requests,
        sum(cpu) / requests if len(cpu) == len(results) else None,
        statistics.mean(shares) if len(shares) == len(results) else None,
    )


# --- the run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    load: LoadOptions
    busy_before: float | None
    rounds: list[Round]
    startup_fresh_s: float
    startup_second_s: float
    shutdowns: list[Shutdown]
    response_bytes: int
    finished: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def baseline(self) -> LoadResult:
        return _combined([r.baseline for r in self.rounds])

    @property
    def touchstone(self) -> LoadResult:
        return _combined([r.touchstone for r in self.rounds])

    @property
    def ratio(self) -> float:
        """The median round's: a round compares the two servers on the same machine speed."""
        return statistics.median(r.ratio for r in self.rounds)

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            "ratio": self.ratio >= GOAL_RATIO,
            "startup_fresh": self.startup_fresh_s < STARTUP_LIMIT_S,
            "startup_second": self.startup_second_s < STARTUP_LIMIT_S,
            "shutdown": all(s.clean for s in self.shutdowns),
        }

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": {
                "cpus": os.cpu_count(),
                "busy_share_before": self.busy_before,
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "endpoint": LIST_PATH,
            "load_generator": self.load.describe(),
            "server": SERVER_SETTINGS,
            "rate_limits": RATE_LIMITS,
            "baseline_kind": BASELINE_KIND,
            "response_bytes": self.response_bytes,
            "baseline": asdict(self.baseline),
            "touchstone": asdict(self.touchstone),
            "rounds": [asdict(r) | {"ratio": round(r.ratio, 4)} for r in self.rounds],
            "ratio": round(self.ratio, 4),
            "goal_ratio": GOAL_RATIO,
            "startup_s": {
                "fresh": round(self.startup_fresh_s, 2),
                "second": round(self.startup_second_s, 2),
                "limit": STARTUP_LIMIT_S,
            },
            "bytecode_cache_disabled": _bytecode_cache_disabled(),
            "shutdowns": [asdict(s) for s in self.shutdowns],
            "pass": self.verdicts,
        }

    def table(self) -> str:
        verdict = {True: "PASS", False: "FAIL"}
        passed = self.verdicts
        busy = "n/a" if self.busy_before is None else f"{self.busy_before:.0%}"
        rows = [
            f"GET {LIST_PATH}: Touchstone (JWT, RLS, PostgreSQL) vs a bare FastAPI endpoint",
            f"machine: {os.cpu_count()} CPUs, {busy} busy just before the run",
            f"load generator: {self.load.describe()}",
            f"servers: {SERVER_SETTINGS}",
            f"touchstone: rate limits counted on every request, raised to {UNREFUSED_LIMIT}",
            f"baseline: {BASELINE_KIND}",
            f"response: {self.response_bytes} bytes, the same body from both servers",
            "",
            f"{'':<12}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}"
            f"{'server CPU ms/req':>19}{'CPU busy':>10}",
        ]
        for name, result in (("baseline", self.baseline), ("touchstone", self.touchstone)):
            cpu_ms, share = result.server_cpu_ms, result.server_cpu_share
            rows.append(
                f"{name:<12}{result.requests_per_s:>10,.1f}{result.p50_ms:>9.2f}"
                f"{result.p99_ms:>9.2f}{result.requests:>10,}"
                f"{'n/a' if cpu_ms is None else f'{cpu_ms:.3f}':>19}"
                f"{'n/a' if share is None else f'{share:.0%}':>10}"
            )
        rows += [
            "(all rounds together; server CPU: the uvicorn process alone, Touchstone's "
            "PostgreSQL work is not in it)",
            f"ratio touchstone/baseline per round: "
            f"{', '.join(f'{r.ratio:.1%}' for r in self.rounds)}",
            f"ratio touchstone/baseline (median round): {self.ratio:.1%} (goal >= "
            f"{GOAL_RATIO:.0%})  {verdict[passed['ratio']]}",
            "",
            f"start-up to {READY_PATH} = 200 (limit {STARTUP_LIMIT_S:.0f} s)",
            f"  fresh data dir (initdb + migrations)  {self.startup_fresh_s:6.2f} s  "
            f"{verdict[passed['startup_fresh']]}",
            f"  existing data dir (as `make run`)     {self.startup_second_s:6.2f} s  "
            f"{verdict[passed['startup_second']]}",
        ]
        if _bytecode_cache_disabled():
            rows.append(
                "  note: PYTHONDONTWRITEBYTECODE is set, so every start compiles "
                "all modules from source"
            )
        rows.append(f"stop on SIGINT (twice)  {verdict[passed['shutdown']]}")
        rows += [
            f"  exit {s.exit_code}; child processes "
            f"{'stopped' if s.children_stopped else 'LEFT RUNNING'}; embedded PostgreSQL "
            f"{'stopped' if s.postgres_stopped else 'LEFT RUNNING'}"
            for s in self.shutdowns
        ]
        if self.busy_before is not None and self.busy_before > BUSY_WARNING:
            rows.append(
                f"warning: the machine was {busy} busy before the run; other work lowers "
                "both figures, Touchstone's more: rerun on a quiet machine"
            )
        starved = [
            name
            for name, result in (("baseline", self.baseline), ("touchstone", self.touchstone))
            if result.server_cpu_share is not None and result.server_cpu_share < SATURATED
        ]
        if starved:
            rows.append(
                f"warning: {' and '.join(starved)} got less than {SATURATED:.0%} of a core: "
                "the generator was the limit, or other work took the CPUs"
            )
        if not passed["ratio"]:
            rows.append("hint: profile the server under load, see bench/README.md (py-spy)")
        return "\n".join(rows)


def _bytecode_cache_disabled() -> bool:
    return bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))


def run(load: LoadOptions, users: int) -> Report:
    busy_before = busy_share()
    with scratch_dir() as data_dir:
        env = child_env(data_dir, RATE_LIMITS)
        log = data_dir / "touchstone.log"
        say(f"starting touchstone on a fresh data dir {data_dir}")
        with serving("touchstone", SERVE, env, data_dir, log, READY_PATH) as first:
            fresh_s = first.wait_ready()
            shutdowns = [_stop_and_check(first, data_dir)]
        say(f"ready in {fresh_s:.2f} s; stopped; starting again on the same data")
        with serving("touchstone", SERVE, env, data_dir, log, READY_PATH) as server:
            second_s = server.wait_ready()
            say(f"ready in {second_s:.2f} s; seeding an org with {users} members")
            token, page = _seed(server.port, env, data_dir, users)
            headers = {"Authorization": f"Bearer {token}"}
            payload = data_dir / "users-page.json"
            payload.write_bytes(page)
            with serving(
                "baseline",
                [sys.executable, "-m", "bench.baseline_app"],
                {**env, PAYLOAD_ENV: str(payload)},
                ROOT,
                data_dir / "baseline.log",
                LIST_PATH,
            ) as baseline:
                baseline.wait_ready()
                if http_request(baseline.port, "GET", LIST_PATH, headers=headers)[1] != page:
                    raise BenchError(
                        "the baseline's body differs from Touchstone's: bring the models in "
                        "bench/baseline_app.py back in line with Page[MemberOut]"
                    )
                say(f"measuring both, {load.rounds} rounds")
                rounds = _alternate(load, baseline, server, headers)
            shutdowns.append(_stop_and_check(server, data_dir))
    return Report(
        load,
        busy_before,
        rounds,
        fresh_s,
        second_s,
        shutdowns,
        len(page),
    )


def _parse_args(argv: list[str] | None) -> tuple[LoadOptions, int]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http_list",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk when it is on PATH, else the built-in Python generator",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--duration", type=int, default=2, help="seconds measured per round and server"
    )
    parser.add_argument("--rounds", type=int, default=12, help="rounds, each measuring both")
    parser.add_argument("--warmup", type=int, default=3, help="seconds before measuring")
    parser.add_argument("--users", type=int, default=24, help="members besides the admin")
    args = parser.parse_args(argv)
    if args.users < 20:
        parser.error("--users must be at least 20, so the page of 20 is full")
    generator: str = args.generator
    if generator == "wrk" and shutil.which("wrk") is None:
        parser.error(f"wrk is not on PATH; install it: {WRK_INSTALL}")
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
        if generator == "python":
            say(
                f"wrk not found, using the built-in Python generator. For trustworthy "
                f"figures install wrk: {WRK_INSTALL}. The Python generator needs much more "
                f"CPU per request, so it can cap the baseline and flatter the ratio."
            )
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    load = LoadOptions(
        generator, args.threads, args.connections, args.duration, args.warmup, args.rounds
    )
    return load, args.users


def main(argv: list[str] | None = None) -> int:
    load, users = _parse_args(argv)
    return run_main(lambda: run(load, users), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
