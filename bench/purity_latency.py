"""Benchmark the live purity test: frame -> status latency over the WebSocket, on loopback.

The goal (from the issue): p95 under 100 ms. A client streams the synthetic 22K touchstone
clip (640x480 JPEG frames) to `touchstone serve` in lockstep - the next frame leaves when the
status of the last one has arrived - so each sample is one frame's full round trip: the
WebSocket, JPEG decoding, the classical detectors and the stage logic, the status JSON.
Each run is a whole purity test from RUBBING to the saved result; the frame that completes
a test also stores its evidence and writes the result in one transaction, and is reported
apart ("result saved").

The baseline, measured in the same run: the same frames to a bare uvicorn/Starlette WebSocket
that answers each with a status-sized JSON message at once, so the ratio is what the purity
test itself adds to the transport.

Run from the checkout: `python -m bench.purity_latency`; `--help` for options.
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import cv2
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect

from bench.common import (
    HOST,
    NO_WORKER,
    RATE_LIMITS,
    READY_PATH,
    RESULTS_DIR,
    ROOT,
    SERVE,
    BenchError,
    Child,
    busy_share,
    child_env,
    create_org,
    describe_busy,
    finished_at,
    free_port,
    latency_summary,
    machine,
    run_main,
    say,
    scratch_dir,
    serving,
    sign_in,
    supervised,
    verdict,
)
from bench.generators.touchstone_clips import ClipSpec, TouchstoneClip
from touchstone.appraisal.purity.pipeline import Karat

RESULTS = RESULTS_DIR / "purity_latency.json"
GOAL_P95_MS = 100.0
ORG_SLUG = "bench-purity"
ADMIN = "admin@bench-purity.example.com"
API = "/api/v1"
ECHO_PATH = "/echo"
ECHO_REPLY = json.dumps({"type": "purity_status", "padding": "x" * 300})
"""About the size of a status message with a few detections."""


@dataclass(frozen=True)
class Options:
    tests: int
    quality: int


@dataclass(frozen=True)
class Figures:
    name: str
    frames: int
    latency_ms: dict[str, float]


@dataclass(frozen=True)
class Report:
    options: Options
    busy_before: float | None
    purity: Figures
    baseline: Figures
    result_saved_ms: list[float]
    karats: list[str]
    finished: str

    @property
    def ratio(self) -> float:
        return self.purity.latency_ms["p50"] / self.baseline.latency_ms["p50"]

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            "p95": self.purity.latency_ms["p95"] < GOAL_P95_MS,
            "karat_read": all(karat == "22K" for karat in self.karats),
        }

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": machine(self.busy_before),
            "options": asdict(self.options),
            "purity": asdict(self.purity),
            "baseline": asdict(self.baseline),
            "result_saved_ms": self.result_saved_ms,
            "karats": self.karats,
            "ratio_p50": round(self.ratio, 2),
            "goal_p95_ms": GOAL_P95_MS,
            "pass": self.verdicts,
        }

    def table(self) -> str:
        passed = self.verdicts
        rows = [
            "live purity test, frame -> status over the WebSocket on loopback, lockstep "
            "(one frame in flight), 640x480 JPEG frames of the synthetic 22K clip",
            f"machine: {os.cpu_count()} CPUs, {describe_busy(self.busy_before)} busy just "
            "before the run; `touchstone serve`, one process, classical engine",
            "",
            f"{'':<28}{'frames':>7}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}",
        ]
        for figures in (self.purity, self.baseline):
            lat = figures.latency_ms
            rows.append(
                f"{figures.name:<28}{figures.frames:>7}{lat['p50']:>8.1f}{lat['p95']:>8.1f}"
                f"{lat['p99']:>8.1f}{lat['max']:>8.1f}"
            )
        saved = ", ".join(f"{ms:.0f}" for ms in self.result_saved_ms)
        rows += [
            "",
            f"ratio p50 purity/echo: {self.ratio:.1f}x",
            f"p95 goal < {GOAL_P95_MS:.0f} ms: {verdict(passed['p95'])}",
            f"frame that completed each test (evidence stored, result saved): {saved} ms",
            f"karat read in every test: {', '.join(self.karats)} {verdict(passed['karat_read'])}",
        ]
        return "\n".join(rows)


def clip_frames(quality: int) -> list[bytes]:
    """The clip as the WebSocket takes it: `TSF1` + clip time + JPEG, encoded once."""
    clip = TouchstoneClip(ClipSpec(karat=Karat.K22, seed=11))
    frames = []
    for index in range(len(clip)):
        frame, _ = clip.frame(index)
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        frames.append(b"TSF1" + struct.pack(">d", clip.timestamp(index)) + jpeg)
    return frames


# --- the baseline server -------------------------------------------------------------------


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.receive_bytes()
            await websocket.send_text(ECHO_REPLY)
    except WebSocketDisconnect:
        return


def serve_echo(port: int) -> None:
    app = Starlette(routes=[WebSocketRoute(ECHO_PATH, _echo)])
    uvicorn.run(app, host=HOST, port=port, log_level="warning", ws="websockets-sansio")


# --- measuring -----------------------------------------------------------------------------


async def _lockstep(url: str, frames: list[bytes]) -> tuple[list[float], dict[str, Any]]:
    """Per-frame round trips until the test completes (or the frames run out)."""
    samples: list[float] = []
    last: dict[str, Any] = {}
    async with connect(url, max_size=None) as ws:
        for frame in frames:
            started = time.perf_counter()
            await ws.send(frame)
            last = json.loads(await ws.recv())
            samples.append((time.perf_counter() - started) * 1000)
            if last.get("saved"):
                break
    return samples, last


async def _purity_test(http: httpx.AsyncClient, port: int, token: str, branch: str) -> str:
    customer = await http.post(
        f"{API}/customers",
        json={
            "full_name": "Bench Customer",
            "phone": "+91 90000 00000",
            "id_document_type": "pan",
            "id_number": "ABCDE1234F",
        },
    )
    appraisal = await http.post(
        f"{API}/appraisals", json={"customer_id": customer.json()["id"], "branch_id": branch}
    )
    appraisal_id = appraisal.json()["id"]
    item = await http.post(
        f"{API}/appraisals/{appraisal_id}/items",
        json={"item_type": "ring", "gross_weight_g": "8.000"},
    )
    test = await http.post(
        f"{API}/appraisals/{appraisal_id}/items/{item.json()['id']}/purity-sessions"
    )
    if test.status_code != 201:
        raise BenchError(f"creating a purity test: HTTP {test.status_code}: {test.text[:300]}")
    return f"ws://{HOST}:{port}{API}/purity-sessions/{test.json()['id']}/ws?access_token={token}"


async def _measure(port: int, token: str, echo_port: int, options: Options) -> Report:
    frames = clip_frames(options.quality)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", headers=headers) as http:
        branch = await http.post(f"{API}/branches", json={"name": "Bench", "code": "BENCH"})
        if branch.status_code != 201:
            raise BenchError(f"creating a branch: HTTP {branch.status_code}: {branch.text}")
        latencies: list[float] = []
        saved: list[float] = []
        karats: list[str] = []
        await _lockstep(await _purity_test(http, port, token, branch.json()["id"]), frames)
        say("warm-up test done")
        for number in range(options.tests):
            url = await _purity_test(http, port, token, branch.json()["id"])
            samples, last = await _lockstep(url, frames)
            if not last.get("saved"):
                raise BenchError(f"test {number + 1} did not complete: {last}")
            latencies += samples[:-1]
            saved.append(round(samples[-1], 1))
            karats.append(str(last["karat"]))
    echo, _ = await _lockstep(f"ws://{HOST}:{echo_port}{ECHO_PATH}", frames * options.tests)
    return Report(
        options=options,
        busy_before=None,
        purity=Figures("purity test (frame -> status)", len(latencies), latency_summary(latencies)),
        baseline=Figures("WebSocket echo (baseline)", len(echo), latency_summary(echo)),
        result_saved_ms=saved,
        karats=karats,
        finished=finished_at(),
    )


def run(options: Options) -> Report:
    busy_before = busy_share()
    with scratch_dir() as data_dir:
        env = child_env(data_dir, {**NO_WORKER, **RATE_LIMITS})
        say(f"starting touchstone on a fresh data dir {data_dir}")
        with serving(
            "touchstone", SERVE, env, data_dir, data_dir / "serve.log", READY_PATH
        ) as server:
            server.wait_ready()
            password = secrets.token_urlsafe(16)
            create_org(
                env,
                data_dir,
                name="Bench Purity",
                slug=ORG_SLUG,
                admin_email=ADMIN,
                password=password,
            )
            token = sign_in(server.port, ADMIN, password, ORG_SLUG)
            echo_port = free_port()
            echo = [sys.executable, "-m", "bench.purity_latency", "--echo-server", str(echo_port)]
            log = data_dir / "echo.log"
            with supervised(Child("echo", echo, env, ROOT, log)):
                _wait_for_port(echo_port)
                report = asyncio.run(_measure(server.port, token, echo_port, options))
    return replace(report, busy_before=busy_before)


def _wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise BenchError(f"the echo server did not listen on {port}")


def _parse_args(argv: list[str] | None) -> tuple[Options, int | None]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.purity_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tests", type=int, default=5, help="purity tests measured (default 5)")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    parser.add_argument("--echo-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tests < 1 or not 1 <= args.quality <= 100:
        parser.error("--tests must be at least 1 and --quality within 1..100")
    return Options(args.tests, args.quality), args.echo_server


def main(argv: list[str] | None = None) -> int:
    options, echo_port = _parse_args(argv)
    if echo_port is not None:
        serve_echo(echo_port)
        return 0
    return run_main(lambda: run(options), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
