"""Benchmark live-event latency: from an event's commit to a Server-Sent Events client.

The goal (from the issue): p95 under 100 ms on loopback, through the whole production path —
the outbox row committed with the change, the relay in the API process numbering it, PostgreSQL
NOTIFY to the API's listener, the org's stream. The same is measured for a WebSocket client.

Run from the checkout: `python -m bench.event_latency`; `--help` for options.
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from sqlalchemy.engine import URL
from websockets.asyncio.client import connect

from bench.common import (
    HOST,
    NO_WORKER,
    READY_PATH,
    RESULTS_DIR,
    SERVE,
    BenchError,
    busy_share,
    child_env,
    create_org,
    database_urls,
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
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events import publish

RESULTS = RESULTS_DIR / "event_latency.json"
GOAL_P95_MS = 100.0
TOPIC = "bench.latency"
ORG_SLUG = "bench-events"
ADMIN = "admin@bench.example.com"
LIVE_TIMEOUT_S = 10.0
PROBE_EVERY_S = 0.05
STRAGGLER_TIMEOUT_S = 5.0

Events = AsyncIterator[dict[str, Any]]
"""Event bodies as a client receives them ({"id", "topic", "data", …})."""


@dataclass(frozen=True)
class Options:
    events: int
    interval_ms: float
    warmup: int


@dataclass(frozen=True)
class Transport:
    name: str
    latency_ms: dict[str, float]
    """From just before the event's transaction (its timestamp is in the event) to receipt."""
    publish_ms: dict[str, float]
    """The publisher's own transaction (insert, NOTIFY, commit), part of the latency above."""
    received: int
    sent: int


async def _sse_events(port: int, token: str) -> Events:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream(
            "GET",
            f"http://{HOST}:{port}/api/v1/events?topics={TOPIC}",
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        if response.status_code != 200:
            raise BenchError(f"GET /api/v1/events: HTTP {response.status_code}")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                yield json.loads(line.removeprefix("data: "))


async def _websocket_events(port: int, token: str) -> Events:
    url = f"ws://{HOST}:{port}/api/v1/ws?topics={TOPIC}&access_token={token}"
    async with connect(url) as websocket:
        async for message in websocket:
            yield json.loads(message)


async def _receive(events: Events, arrivals: dict[tuple[str, int], float]) -> None:
    """Record each event's latency on arrival, keyed by (phase, number)."""
    async for body in events:
        received_ns = time.time_ns()
        data = body["data"]
        arrivals[data["phase"], data["n"]] = (received_ns - data["sent_ns"]) / 1e6


class Publisher:
    """Publishes events one per transaction through the runtime role, as a request does."""

    def __init__(self, database: Database, org_id: uuid.UUID) -> None:
        self.database, self.org_id = database, org_id

    async def publish(self, phase: str, n: int) -> float:
        """Returns the transaction's duration in ms; the event carries its start time."""
        sent_ns = time.time_ns()
        async with self.database.transaction(org_id=self.org_id) as session:
            await publish(
                session,
                self.org_id,
                TOPIC,
                aggregate=("bench", n),
                data={"phase": phase, "n": n, "sent_ns": sent_ns},
            )
        return (time.time_ns() - sent_ns) / 1e6


async def _until(arrived: Callable[[], bool], receiver: asyncio.Task[None], seconds: float) -> bool:
    """Wait for `arrived()`; a receiver that failed (refused, disconnected) is an error."""
    deadline = time.perf_counter() + seconds
    while not arrived():
        if receiver.done():
            raise BenchError(f"the stream ended: {receiver.exception()!r}")
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _measure(name: str, events: Events, publisher: Publisher, options: Options) -> Transport:
    arrivals: dict[tuple[str, int], float] = {}
    receiver = asyncio.create_task(_receive(events, arrivals))
    try:
        # The server subscribes once the stream has started: probe until an event arrives.
        probes = 0
        while not await _until(lambda: bool(arrivals), receiver, PROBE_EVERY_S):
            if probes * PROBE_EVERY_S > LIVE_TIMEOUT_S:
                raise BenchError(f"no event reached the {name} client in {LIVE_TIMEOUT_S:.0f} s")
            await publisher.publish("probe", probes)
            probes += 1
        for n in range(options.warmup):  # pools, caches and lazy imports on both sides
            await publisher.publish("warmup", n)
            await asyncio.sleep(options.interval_ms / 1000)
        say(f"{name}: publishing {options.events} events {options.interval_ms:g} ms apart")
        publish_ms: list[float] = []
        started = time.perf_counter()
        for n in range(options.events):
            publish_ms.append(await publisher.publish("measure", n))
            next_at = started + (n + 1) * options.interval_ms / 1000
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        measured = [("measure", n) for n in range(options.events)]
        await _until(
            lambda: all(key in arrivals for key in measured), receiver, STRAGGLER_TIMEOUT_S
        )
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
    latencies = [arrivals[key] for key in measured if key in arrivals]
    if len(latencies) < 2:
        raise BenchError(f"only {len(latencies)} of {options.events} events reached {name}")
    return Transport(
        name, latency_summary(latencies), latency_summary(publish_ms), len(latencies), len(measured)
    )


async def _measure_both(
    settings: Settings, runtime: URL, org_id: uuid.UUID, port: int, token: str, options: Options
) -> list[Transport]:
    database = Database(runtime, settings)
    publisher = Publisher(database, org_id)
    try:
        return [
            await _measure("SSE", _sse_events(port, token), publisher, options),
            await _measure("WebSocket", _websocket_events(port, token), publisher, options),
        ]
    finally:
        await database.dispose()


@dataclass(frozen=True)
class Report:
    options: Options
    busy_before: float | None
    transports: list[Transport]
    finished: str

    @property
    def sse(self) -> Transport:
        return self.transports[0]

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            "sse_p95": self.sse.latency_ms["p95"] < GOAL_P95_MS,
            "all_delivered": all(t.received == t.sent for t in self.transports),
        }

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": machine(self.busy_before),
            "options": asdict(self.options),
            "transports": [asdict(t) for t in self.transports],
            "goal_sse_p95_ms": GOAL_P95_MS,
            "pass": self.verdicts,
        }

    def table(self) -> str:
        passed = self.verdicts
        rows = [
            "live events, commit to client on loopback: publish() through the runtime role -> "
            "outbox relay in `touchstone serve` -> NOTIFY -> the org's stream",
            f"machine: {os.cpu_count()} CPUs, {describe_busy(self.busy_before)} busy just "
            "before the run",
            f"{self.options.events} events per client, one per transaction, "
            f"{self.options.interval_ms:g} ms apart, after {self.options.warmup} warm-up events",
            "",
            f"{'':<11}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}{'received':>11}"
            "  goal (p95)",
        ]
        for transport in self.transports:
            lat = transport.latency_ms
            goal = (
                f"< {GOAL_P95_MS:.0f} ms  {verdict(passed['sse_p95'])}"
                if transport is self.sse
                else "(none)"
            )
            rows.append(
                f"{transport.name:<11}{lat['p50']:>8.1f}{lat['p95']:>8.1f}{lat['p99']:>8.1f}"
                f"{lat['max']:>8.1f}{f'{transport.received}/{transport.sent}':>11}  {goal}"
            )
        publish_p50 = ", ".join(f"{t.publish_ms['p50']:.1f}" for t in self.transports)
        rows += [
            "(latency: from the timestamp taken just before the publishing transaction, which "
            "the event carries, to its arrival;",
            f" that transaction itself - insert, NOTIFY, commit - took p50 {publish_p50} ms "
            "and is included)",
            f"every event delivered: {verdict(passed['all_delivered'])}",
        ]
        return "\n".join(rows)


def run(options: Options) -> Report:
    busy_before = busy_share()
    with scratch_dir() as data_dir:
        env = child_env(data_dir, NO_WORKER)
        say(f"starting touchstone on a fresh data dir {data_dir}")
        log = data_dir / "serve.log"
        with serving("touchstone", SERVE, env, data_dir, log, READY_PATH) as server:
            server.wait_ready()
            password = secrets.token_urlsafe(16)
            org_id = create_org(
                env,
                data_dir,
                name="Bench Events",
                slug=ORG_SLUG,
                admin_email=ADMIN,
                password=password,
            )
            token = sign_in(server.port, ADMIN, password, ORG_SLUG)
            with database_urls(env) as (settings, urls):
                transports = asyncio.run(
                    _measure_both(settings, urls.runtime, org_id, server.port, token, options)
                )
    return Report(options, busy_before, transports, finished_at())


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.event_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=500, help="events per client (default 500)")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="ms between events (default 10)"
    )
    parser.add_argument("--warmup", type=int, default=20, help="events not counted (default 20)")
    args = parser.parse_args(argv)
    if args.events < 2 or args.interval < 0 or args.warmup < 0:
        parser.error("--events must be at least 2, --interval and --warmup not negative")
    return Options(args.events, args.interval, args.warmup)


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    return run_main(lambda: run(options), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
