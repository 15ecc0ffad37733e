"""Benchmark what an Idempotency-Key costs on a creating request.

The goal (from the issue): `POST /api/v1/branches` with an `Idempotency-Key` header (advisory
lock, lookup, the sealed response stored with the effect) takes under 1.3x the mean latency of
the same request without one, both measured in one run against one `touchstone serve`.

Run from the checkout: `python -m bench.idempotency_overhead`; `--help` for options.
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx

from bench.common import (
    HOST,
    NO_WORKER,
    RATE_LIMITS,
    READY_PATH,
    RESULTS_DIR,
    SERVE,
    BenchError,
    busy_share,
    child_env,
    cpu_seconds,
    create_org,
    describe_busy,
    finished_at,
    latency_summary,
    machine,
    run_main,
    say,
    scratch_dir,
    serving,
    sign_in,
    verdict,
)

RESULTS = RESULTS_DIR / "idempotency_overhead.json"
GOAL_RATIO = 1.3
PATH = "/api/v1/branches"
ORG_SLUG = "bench-idempotency"
ADMIN = "admin@bench.example.com"
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class Options:
    rounds: int
    per_round: int
    concurrency: int
    warmup: int


@dataclass
class Mode:
    """One way of sending the request, with what its measured batches added up to."""

    name: str
    keyed: bool
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    server_cpu_s: float | None = 0.0

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s

    @property
    def server_cpu_ms(self) -> float | None:
        """The uvicorn process's CPU per request (PostgreSQL's backends are not in it)."""
        if self.server_cpu_s is None:
            return None
        return self.server_cpu_s * 1000 / len(self.latencies_ms)

    def summary(self) -> dict[str, object]:
        return {
            "requests": len(self.latencies_ms),
            "requests_per_s": round(self.requests_per_s, 1),
            "latency_ms": latency_summary(self.latencies_ms),
            "server_cpu_ms_per_request": self.server_cpu_ms,
        }


class Load:
    """A closed loop of `concurrency` clients on keep-alive connections, each sending its
    next request as soon as the last one is answered."""

    def __init__(self, client: httpx.AsyncClient, concurrency: int, server_pid: int) -> None:
        self.client, self.concurrency, self.server_pid = client, concurrency, server_pid

    async def create(self, code: str, key: str | None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        response = await self.client.post(
            PATH, json={"name": f"Branch {code}", "code": code}, headers=headers
        )
        if response.status_code != 201:
            raise BenchError(
                f"POST {PATH}: HTTP {response.status_code}, expected 201: {response.text[:300]}"
            )
        return response

    async def batch(self, mode: Mode, label: str, count: int, record: bool) -> None:
        codes = iter(f"{label}-{n:05d}" for n in range(count))
        latencies: list[float] = []

        async def client() -> None:
            for code in codes:
                sent = time.perf_counter()
                await self.create(code, uuid.uuid4().hex if mode.keyed else None)
                latencies.append((time.perf_counter() - sent) * 1000)

        cpu_before, started = cpu_seconds(self.server_pid), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(self.concurrency)))
        elapsed, cpu_after = time.perf_counter() - started, cpu_seconds(self.server_pid)
        if not record:
            return
        mode.latencies_ms += latencies
        mode.elapsed_s += elapsed
        if cpu_before is None or cpu_after is None or mode.server_cpu_s is None:
            mode.server_cpu_s = None
        else:
            mode.server_cpu_s += cpu_after - cpu_before


async def _check_replay(load: Load) -> None:
    """The keyed path must really be taken: the same key and body again is a replay."""
    key = uuid.uuid4().hex
    first = await load.create("replay-check", key)
    again = await load.create("replay-check", key)
    if again.headers.get(REPLAYED_HEADER) != "true" or again.json() != first.json():
        raise BenchError(f"a repeated Idempotency-Key was not replayed: {again.headers}")


async def _measure(port: int, token: str, server_pid: int, options: Options) -> list[Mode]:
    modes = [Mode("without key", keyed=False), Mode("with key", keyed=True)]
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}",
        headers={"Authorization": f"Bearer {token}"},
        limits=httpx.Limits(
            max_connections=options.concurrency, max_keepalive_connections=options.concurrency
        ),
        timeout=30,
    ) as client:
        load = Load(client, options.concurrency, server_pid)
        await _check_replay(load)
        for mode in modes:  # pools, caches and lazy imports on both sides
            await load.batch(mode, f"w{mode.keyed:d}", options.warmup, record=False)
        say(
            f"{options.rounds} rounds of {options.per_round} requests per mode, "
            f"{options.concurrency} at a time"
        )
        for number in range(options.rounds):
            # Alternate which mode goes first, so a drift (caches, table growth) hits both.
            for mode in modes if number % 2 == 0 else modes[::-1]:
                await load.batch(mode, f"r{number}{mode.keyed:d}", options.per_round, record=True)
    return modes


@dataclass(frozen=True)
class Report:
    options: Options
    busy_before: float | None
    plain: Mode
    keyed: Mode
    finished: str

    @property
    def latency_ratio(self) -> float:
        return (
            latency_summary(self.keyed.latencies_ms)["mean"]
            / latency_summary(self.plain.latencies_ms)["mean"]
        )

    @property
    def throughput_ratio(self) -> float:
        return self.plain.requests_per_s / self.keyed.requests_per_s

    @property
    def verdicts(self) -> dict[str, bool]:
        return {"mean_latency_ratio": self.latency_ratio < GOAL_RATIO}

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": machine(self.busy_before),
            "endpoint": f"POST {PATH}",
            "options": {
                "rounds": self.options.rounds,
                "per_round": self.options.per_round,
                "concurrency": self.options.concurrency,
                "warmup": self.options.warmup,
            },
            "without_key": self.plain.summary(),
            "with_key": self.keyed.summary(),
            "mean_latency_ratio": round(self.latency_ratio, 4),
            "throughput_ratio": round(self.throughput_ratio, 4),
            "goal_ratio_below": GOAL_RATIO,
            "pass": self.verdicts,
        }

    def table(self) -> str:
        rows = [
            f"POST {PATH} (unique codes) with and without an Idempotency-Key, one "
            "`touchstone serve`",
            f"machine: {os.cpu_count()} CPUs, {describe_busy(self.busy_before)} busy just "
            "before the run",
            f"load: closed loop, httpx, {self.options.concurrency} concurrent, "
            f"{self.options.rounds} alternating rounds of {self.options.per_round} per mode "
            f"after {self.options.warmup} warm-up each",
            "",
            f"{'':<13}{'req/s':>8}{'mean ms':>9}{'p50 ms':>8}{'p99 ms':>8}{'requests':>10}"
            f"{'server CPU ms/req':>19}",
        ]
        for mode in (self.plain, self.keyed):
            lat = latency_summary(mode.latencies_ms)
            cpu = mode.server_cpu_ms
            rows.append(
                f"{mode.name:<13}{mode.requests_per_s:>8,.1f}{lat['mean']:>9.2f}"
                f"{lat['p50']:>8.2f}{lat['p99']:>8.2f}{len(mode.latencies_ms):>10,}"
                f"{'n/a' if cpu is None else f'{cpu:.2f}':>19}"
            )
        rows += [
            "(server CPU: the uvicorn process alone; PostgreSQL's work is not in it)",
            f"mean latency with/without key: {self.latency_ratio:.3f}x (goal < {GOAL_RATIO}x)  "
            f"{verdict(self.verdicts['mean_latency_ratio'])}",
            f"req/s without/with key: {self.throughput_ratio:.3f}x",
        ]
        return "\n".join(rows)


def run(options: Options) -> Report:
    busy_before = busy_share()
    with scratch_dir() as data_dir:
        env = child_env(data_dir, {**NO_WORKER, **RATE_LIMITS})
        say(f"starting touchstone on a fresh data dir {data_dir}")
        log = data_dir / "serve.log"
        with serving("touchstone", SERVE, env, data_dir, log, READY_PATH) as server:
            server.wait_ready()
            password = secrets.token_urlsafe(16)
            create_org(
                env,
                data_dir,
                name="Bench Idempotency",
                slug=ORG_SLUG,
                admin_email=ADMIN,
                password=password,
            )
            token = sign_in(server.port, ADMIN, password, ORG_SLUG)
            plain, keyed = asyncio.run(_measure(server.port, token, server.process.pid, options))
    return Report(options, busy_before, plain, keyed, finished_at())


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.idempotency_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=10, help="rounds per mode (default 10)")
    parser.add_argument(
        "--per-round", type=int, default=200, help="requests per mode per round (default 200)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=16, help="requests in flight (default 16)"
    )
    parser.add_argument(
        "--warmup", type=int, default=100, help="requests per mode not counted (default 100)"
    )
    args = parser.parse_args(argv)
    if min(args.rounds, args.concurrency, args.warmup) < 1 or args.per_round < 2:
        parser.error("every size must be positive, --per-round at least 2")
    return Options(args.rounds, args.per_round, args.concurrency, args.warmup)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    return run_main(lambda: run(options), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
