"""Load run (`make load`): a realistic mix for two tenants against `touchstone serve`.

Each tenant has a few simulated users that sign in, list and read, create branches with
`Idempotency-Key` (and replay some keys, as a client retrying after a lost response would),
and upload statement batches; one stream per tenant runs purity tests over the WebSocket.
Reported: per-endpoint p50/p95/p99 and error counts, the server's memory after warm-up and
at the end. Afterwards the database is checked: every acknowledged create exists exactly once
(replays made nothing new), every accepted batch finished, no job failed.

Goals (issue 6): zero 5xx, zero lost or duplicated effects, memory growth under 10% after
warm-up. `--seconds` sets the duration (default 300; `LOAD_SECONDS` for `make load`).
Exit status: 0 every goal met, 1 a goal missed, 2 the run could not happen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.common import (
    HOST,
    RATE_LIMITS,
    READY_PATH,
    RESULTS_DIR,
    SERVE,
    BenchError,
    child_env,
    create_org,
    database_urls,
    finished_at,
    latency_summary,
    run_main,
    say,
    scratch_dir,
    serving,
    verdict,
)
from bench.generators.statements import generate_statement
from bench.samples import clip_frames, stream_clip
from touchstone.appraisal.purity.pipeline import Karat

RESULTS = RESULTS_DIR / "load.json"
USERS_PER_TENANT = 4
WARMUP_S = 20.0
MEMORY_GROWTH_LIMIT = 0.10
DROPPED = 599
"""Recorded for a connection that ended without an HTTP answer (counted as a server failure)."""
PASSWORD = secrets.token_urlsafe(16)
API = "/api/v1"


@dataclass
class Tenant:
    slug: str
    org_id: uuid.UUID
    admin: str
    headers: dict[str, str] = field(default_factory=dict)
    branch_id: str = ""
    """The branch the tenant's appraisals are made in (created before the run)."""
    branches_created: set[str] = field(default_factory=set)
    batches_accepted: set[str] = field(default_factory=set)


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    dropped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """What ended each dropped connection (status 599), by endpoint: for the diagnosis."""

    def record(self, name: str, status: int, started: float, why: str = "") -> None:
        self.latencies[name].append((time.perf_counter() - started) * 1000)
        if status >= 400:
            self.errors[name][status] += 1
        if status == DROPPED:
            self.dropped[name].append(f"{why} at {time.strftime('%H:%M:%S')}")

    @property
    def server_errors(self) -> int:
        return sum(n for codes in self.errors.values() for s, n in codes.items() if s >= 500)


async def call(
    client: httpx.AsyncClient, stats: Stats, name: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as error:  # a dropped connection counts as a server failure
        stats.record(name, DROPPED, started, repr(error))
        raise
    stats.record(name, response.status_code, started)
    return response


async def user(client: httpx.AsyncClient, tenant: Tenant, stats: Stats, stop: float) -> None:
    """Reads mostly, some creates, an occasional sign-in; a replayed key now and then."""
    keys: list[str] = []
    rng = random.Random()
    while time.monotonic() < stop:
        roll = rng.random()
        try:
            if roll < 0.02:
                form = {"username": tenant.admin, "password": PASSWORD, "org": tenant.slug}
                await call(
                    client, stats, "POST /auth/token", "POST", f"{API}/auth/token", data=form
                )
            elif roll < 0.45:
                await call(
                    client,
                    stats,
                    "GET /users",
                    "GET",
                    f"{API}/users?limit=20",
                    headers=tenant.headers,
                )
            elif roll < 0.60:
                await call(client, stats, "GET /me", "GET", f"{API}/me", headers=tenant.headers)
            elif roll < 0.75:
                await call(
                    client, stats, "GET /branches", "GET", f"{API}/branches", headers=tenant.headers
                )
            elif roll < 0.85:
                await call(
                    client, stats, "GET /batches", "GET", f"{API}/batches", headers=tenant.headers
                )
            else:
                replay = keys and rng.random() < 0.3
                key = rng.choice(keys) if replay else uuid.uuid4().hex
                keys.append(key)
                body = {"name": f"Branch {key[:8]}", "code": key[:10]}
                response = await call(
                    client,
                    stats,
                    "POST /branches",
                    "POST",
                    f"{API}/branches",
                    headers={**tenant.headers, "Idempotency-Key": key},
                    json=body,
                )
                if response.status_code == 201:
                    tenant.branches_created.add(response.json()["id"])
        except httpx.HTTPError:
            await asyncio.sleep(0.5)


async def uploader(client: httpx.AsyncClient, tenant: Tenant, stats: Stats, stop: float) -> None:
    seed = 0
    while time.monotonic() < stop:
        seed += 1
        statement = generate_statement("ruled_uk", seed=seed + hash(tenant.slug) % 1000)
        files = [("files", (f"s{seed}.pdf", statement.pdf, "application/pdf"))]
        try:
            response = await call(
                client,
                stats,
                "POST /batches",
                "POST",
                f"{API}/batches",
                headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex},
                files=files,
            )
            if response.status_code == 202:
                tenant.batches_accepted.add(response.json()["id"])
        except httpx.HTTPError:
            pass
        await asyncio.sleep(8)


async def purity_streams(
    client: httpx.AsyncClient, port: int, tenant: Tenant, stats: Stats, stop: float
) -> None:
    """Purity tests over the WebSocket, one after another, frames at the clip's 15/s."""
    frames = clip_frames(Karat.K22, seed=3)
    while time.monotonic() < stop:
        try:
            session_url = await _new_purity_session(client, tenant, stats)
        except (httpx.HTTPError, BenchError):
            await asyncio.sleep(2)
            continue
        token = tenant.headers["Authorization"].removeprefix("Bearer ")
        started, why = time.perf_counter(), ""
        try:
            completed = await stream_clip(
                f"ws://{HOST}:{port}{session_url}?access_token={token}", frames
            )
            status = 200 if completed is not None else 408
        except ConnectionClosed as closed:  # 1013: the server's "try again later"
            status = 503 if closed.rcvd is not None and closed.rcvd.code == 1013 else DROPPED
            why = repr(closed)
        except InvalidStatus as refused:
            status = refused.response.status_code
        except Exception as error:
            status, why = DROPPED, repr(error)
        stats.record("WS purity test", status, started, why)


async def _new_purity_session(client: httpx.AsyncClient, tenant: Tenant, stats: Stats) -> str:
    """A customer, an appraisal with one item, and a purity session on it."""
    h = tenant.headers
    customer = {
        "full_name": "Load Customer",
        "phone": "+91 98000 00001",
        "id_document_type": "aadhaar",
        "id_number": "1234 5678 9012",
    }
    created = await call(
        client, stats, "POST /customers", "POST", f"{API}/customers", headers=h, json=customer
    )
    if created.status_code != 201:
        raise BenchError(created.text)
    appraisal = await call(
        client,
        stats,
        "POST /appraisals",
        "POST",
        f"{API}/appraisals",
        headers=h,
        json={"customer_id": created.json()["id"], "branch_id": tenant.branch_id},
    )
    if appraisal.status_code != 201:
        raise BenchError(appraisal.text)
    appraisal_id = appraisal.json()["id"]
    item = await call(
        client,
        stats,
        "POST /appraisals/{id}/items",
        "POST",
        f"{API}/appraisals/{appraisal_id}/items",
        headers=h,
        json={"item_type": "ring", "count": 1, "gross_weight_g": "10.5", "deduction_g": "0.5"},
    )
    if item.status_code != 201:
        raise BenchError(item.text)
    session = await call(
        client,
        stats,
        "POST /purity-sessions",
        "POST",
        f"{API}/appraisals/{appraisal_id}/items/{item.json()['id']}/purity-sessions",
        headers=h,
    )
    if session.status_code != 201:
        raise BenchError(session.text)
    url: str = session.json()["websocket_url"]
    return url


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError("no VmRSS for the server")


@dataclass
class Report:
    seconds: float
    stats: Stats
    memory_after_warmup: int
    memory_end: int
    lost_or_duplicated: list[str]

    @property
    def growth(self) -> float:
        return self.memory_end / self.memory_after_warmup - 1

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            "no_5xx": self.stats.server_errors == 0,
            "effects_exact": not self.lost_or_duplicated,
            "memory": self.growth < MEMORY_GROWTH_LIMIT,
        }

    def endpoints(self) -> list[str]:
        rows = [
            f"load run: {self.seconds:.0f} s, two tenants",
            "",
            f"{'endpoint':<28}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  errors",
        ]
        for name, samples in sorted(self.stats.latencies.items()):
            summary = latency_summary(samples)
            errors = dict(self.stats.errors.get(name, {}))
            rows.append(
                f"{name:<28}{len(samples):>7}{summary['p50']:>9.1f}"
                f"{summary['p95']:>9.1f}{summary['p99']:>9.1f}  {errors or ''}"
            )
        rows += [
            f"  dropped: {name}: {why}" for name, whys in self.stats.dropped.items() for why in whys
        ]
        return rows

    def effects_and_memory(self) -> list[str]:
        ok = self.verdicts
        return [
            f"effects checked against the database: "
            f"{'; '.join(self.lost_or_duplicated) or 'all exactly once'}  "
            f"{verdict(ok['effects_exact'])}",
            f"server memory: {self.memory_after_warmup / 2**20:.0f} MiB after warm-up, "
            f"{self.memory_end / 2**20:.0f} MiB at the end ({self.growth:+.1%}, "
            f"limit {MEMORY_GROWTH_LIMIT:.0%})  {verdict(ok['memory'])}",
        ]

    def table(self) -> str:
        five_xx = f"5xx responses: {self.stats.server_errors}  {verdict(self.verdicts['no_5xx'])}"
        return "\n".join([*self.endpoints(), "", five_xx, *self.effects_and_memory()])

    def to_json(self) -> dict[str, object]:
        return {
            "finished_at": finished_at(),
            "seconds": self.seconds,
            "endpoints": {n: latency_summary(s) for n, s in self.stats.latencies.items()},
            "errors": {n: dict(e) for n, e in self.stats.errors.items()},
            "dropped": dict(self.stats.dropped),
            "memory_after_warmup": self.memory_after_warmup,
            "memory_end": self.memory_end,
            "lost_or_duplicated": self.lost_or_duplicated,
            "verdicts": self.verdicts,
        }


async def drive(port: int, pid: int, tenants: list[Tenant], seconds: float) -> Report:
    stats = Stats()
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", timeout=60, limits=limits
    ) as client:
        for tenant in tenants:
            form = {"username": tenant.admin, "password": PASSWORD, "org": tenant.slug}
            token = (await client.post(f"{API}/auth/token", data=form)).json()["access_token"]
            tenant.headers = {"Authorization": f"Bearer {token}"}
            main = await client.post(
                f"{API}/branches", headers=tenant.headers, json={"name": "Main", "code": "MAIN"}
            )
            tenant.branch_id = main.json()["id"]
        stop = time.monotonic() + seconds
        tasks = [
            asyncio.create_task(job)
            for tenant in tenants
            for job in (
                *(user(client, tenant, stats, stop) for _ in range(USERS_PER_TENANT)),
                uploader(client, tenant, stats, stop),
                purity_streams(client, port, tenant, stats, stop),
            )
        ]
        await asyncio.sleep(min(WARMUP_S, seconds / 4))
        memory_after_warmup = rss_bytes(pid)
        await asyncio.gather(*tasks)
        memory_end = rss_bytes(pid)
    return Report(seconds, stats, memory_after_warmup, memory_end, [])


async def settle_and_check(runtime_url: Any, tenants: list[Tenant]) -> list[str]:
    """Wait for the batches, then compare what clients were told with what is stored."""
    engine = create_async_engine(runtime_url)
    problems: list[str] = []
    try:
        deadline = time.monotonic() + 300
        async with engine.connect() as connection:
            for tenant in tenants:
                await connection.execute(
                    text("select set_config('app.org_id', :org, false)"),
                    {"org": str(tenant.org_id)},
                )
                while time.monotonic() < deadline:
                    pending = (
                        await connection.execute(
                            text("select count(*) from statement_batches where status <> 'done'")
                        )
                    ).scalar_one()
                    await connection.commit()
                    if pending == 0:
                        break
                    await asyncio.sleep(2)
                for told, stored, sql in (
                    (
                        tenant.branches_created,
                        "branches acknowledged, {} stored",
                        "select id::text from branches where name like 'Branch %'",
                    ),
                    (
                        tenant.batches_accepted,
                        "batches accepted, {} done",
                        "select id::text from statement_batches where status = 'done'",
                    ),
                ):
                    found = set((await connection.execute(text(sql))).scalars())
                    if found != told:
                        problems.append(f"{tenant.slug}: {len(told)} {stored.format(len(found))}")
                failed = (
                    await connection.execute(
                        text("select count(*) from jobs where status = 'failed'")
                    )
                ).scalar_one()
                if failed:
                    problems.append(f"{tenant.slug}: {failed} jobs failed")
                await connection.commit()
    finally:
        await engine.dispose()
    return problems


def run(seconds: float) -> Report:
    with scratch_dir() as data_dir:
        env = child_env(data_dir, RATE_LIMITS)
        log = data_dir / "touchstone.log"
        with serving("touchstone", SERVE, env, data_dir, log, READY_PATH) as server:
            server.wait_ready()
            tenants = []
            for name in ("alpha", "bravo"):
                slug = f"load-{name}"
                admin = f"admin@{slug}.example.com"
                org_id = create_org(
                    env,
                    data_dir,
                    name=f"Load {name}",
                    slug=slug,
                    admin_email=admin,
                    password=PASSWORD,
                )
                tenants.append(Tenant(slug, org_id, admin))
            say(f"driving two tenants for {seconds:.0f} s")
            report = asyncio.run(drive(server.port, server.process.pid, tenants, seconds))
            with database_urls(env) as (_, urls):
                report.lost_or_duplicated = asyncio.run(settle_and_check(urls.runtime, tenants))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("LOAD_SECONDS", "300"))
    )
    options = parser.parse_args(argv)
    return run_main(lambda: run(options.seconds), RESULTS)


if __name__ == "__main__":
    raise SystemExit(main())
