"""Enrolment throughput through the API, on photos of the outside faces corpus.

The photos of `bench.faces`'s enrolled identities (strangers are never enrolled) are read
where they lie and first put through the enrolment gates in this process
(`attendance.vision.enrolment` with the engine the API uses): the photos a gate refuses are
counted by gate and left out. The baseline is that bare pipeline (decode, detection, gates,
embedding) run in this process on the `--photos` accepted photos the API is then sent
(cycling through them), once before and once after the API's runs. `touchstone serve` (one
process, no job worker) enrols them with 1 and 4 concurrent clients: each identity is a
person with recorded consent, and each photo is a `POST /api/v1/attendance/people/{id}/faces`.
Measured: enrolments per second, per CPU-second of the server process (PostgreSQL is a
process of its own and not counted), latency from the client, and any refusal by gate. The
figure is the ratio of the API's enrolments per CPU-second to the bare pipeline's on the
same photo sequence.

The engine serialises its dlib calls within one process, so more clients cannot make one
server enrol faster than its pipeline allows; they show what waiting costs in latency.

Goal: every photo the gates accepted here is enrolled through the API, and each photo they
refused is refused by the API for the same reason (sent once each, not timed): otherwise the
API and the pipeline disagree. Run: `python -m bench.attendance_enrolment`. Exit
status: 0 goal met, 1 missed, 2 could not run (e.g. `../shared` is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import (
    HOST,
    NO_WORKER,
    RATE_LIMITS,
    READY_PATH,
    RESULTS_DIR,
    SERVE,
    UNREFUSED_LIMIT,
    BenchError,
    busy_share,
    child_env,
    cpu_seconds,
    create_org,
    describe_busy,
    expect,
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
from bench.faces import FACES, Identity, available, identities
from touchstone.attendance import vision
from touchstone.attendance.engines import default_engine
from touchstone.attendance.exceptions import EnrolmentRefused, InvalidPhoto

RESULTS = RESULTS_DIR / "attendance_enrolment.json"
API = "/api/v1/attendance"
ORG_SLUG, ADMIN, PASSWORD = "bench-enrol", "admin@bench-enrol.example", "bench-enrol-Pa55word!"
DEFAULT_PHOTOS = 40
DEFAULT_CLIENTS = (1, 4)
SETTINGS = {**RATE_LIMITS, "RATE_LIMIT_UPLOADS": UNREFUSED_LIMIT, **NO_WORKER}


@dataclass(frozen=True)
class Photo:
    identity: str
    path: Path
    data: bytes


@dataclass
class Gated:
    """The corpus photos after the in-process gates."""

    accepted: list[Photo] = field(default_factory=list)
    refused: list[tuple[Photo, str]] = field(default_factory=list)
    """With the reason: the gate, or `invalid_photo` (not a JPEG or PNG)."""
    api_answers: dict[str, str] = field(default_factory=dict)
    """Each refused photo's answer through the API, by path in the corpus."""

    @property
    def by_reason(self) -> Counter[str]:
        return Counter(reason for _, reason in self.refused)

    @property
    def api_agrees(self) -> bool:
        return all(
            self.api_answers.get(str(photo.path.relative_to(FACES))) == f"422 {reason}"
            for photo, reason in self.refused
        )


@dataclass
class Level:
    clients: int
    enrolled: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0

    @property
    def per_s(self) -> float:
        return self.enrolled / self.wall_s

    @property
    def per_cpu_s(self) -> float:
        return self.enrolled / self.server_cpu_s

    def to_json(self, bare_per_cpu_s: float) -> dict[str, object]:
        return {
            "clients": self.clients,
            "enrolled": self.enrolled,
            "refused_by_gate": dict(self.refused),
            "failures": self.failures[:5],
            "wall_s": round(self.wall_s, 2),
            "server_cpu_s": round(self.server_cpu_s, 2),
            "enrolments_per_s": round(self.per_s, 2),
            "enrolments_per_server_cpu_s": round(self.per_cpu_s, 2),
            "ratio_to_bare_per_cpu_s": round(self.per_cpu_s / bare_per_cpu_s, 3),
            "latency_ms": latency_summary(self.latencies_ms),
        }


@dataclass
class Report:
    busy_before: float | None
    photos: int
    gated: Gated = field(default_factory=Gated)
    bare_runs: list[float] = field(default_factory=list)
    """Before and after the API's runs: the machine's other work can drift in between."""
    levels: list[Level] = field(default_factory=list)
    finished: str = ""

    @property
    def bare_per_cpu_s(self) -> float:
        return sum(self.bare_runs) / len(self.bare_runs)

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            "enrolled_as_gated": all(
                not level.refused and not level.failures for level in self.levels
            ),
            "refused_as_gated": self.gated.api_agrees,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": machine(self.busy_before),
            "photos_enrolled_per_level": self.photos,
            "corpus_photos_accepted": len(self.gated.accepted),
            "corpus_photos_refused_by_gate": dict(self.gated.by_reason),
            "refused_photos_through_the_api": self.gated.api_answers,
            "bare_pipeline_per_cpu_s": round(self.bare_per_cpu_s, 3),
            "bare_pipeline_runs_per_cpu_s": [round(run, 3) for run in self.bare_runs],
            "levels": [level.to_json(self.bare_per_cpu_s) for level in self.levels],
            "pass": self.verdicts,
        }

    def table(self) -> str:
        refused = ", ".join(f"{gate} {n}" for gate, n in sorted(self.gated.by_reason.items()))
        answers = ", ".join(f"{path}: {answer}" for path, answer in self.gated.api_answers.items())
        rows = [
            "face enrolment through the API (touchstone serve, 1 process, dlib engine)",
            f"machine: {describe_busy(self.busy_before)} of the CPUs busy just before",
            f"corpus photos of enrolled identities: {len(self.gated.accepted)} accepted by "
            f"the gates, refused: {refused or 'none'}; the refused through the API: "
            f"{answers or 'none sent'}",
            "bare pipeline in-process (decode, detect, gates, embed) on the same sequence: "
            f"{self.bare_per_cpu_s:.2f} enrolments per CPU-second (before and after the API: "
            f"{', '.join(f'{run:.2f}' for run in self.bare_runs)})",
        ]
        for level in self.levels:
            latency = latency_summary(level.latencies_ms)
            api_refused = ", ".join(f"{g} {n}" for g, n in sorted(level.refused.items()))
            rows.append(
                f"{level.clients} client(s): {level.enrolled} enrolled in {level.wall_s:.1f} s = "
                f"{level.per_s:.2f}/s; {level.per_cpu_s:.2f} per server CPU-second "
                f"({level.per_cpu_s / self.bare_per_cpu_s:.0%} of bare); p50 "
                f"{latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms; refused "
                f"{api_refused or 'none'}; other failures {len(level.failures)}"
            )
        rows.append(
            "goal every gated photo enrolled through the API "
            f"{verdict(self.verdicts['enrolled_as_gated'])}, every refused one refused for "
            f"the same reason {verdict(self.verdicts['refused_as_gated'])}"
        )
        return "\n".join(rows)


def _gate(enrolled: list[Identity]) -> Gated:
    """Each photo through the gates once in this process: which ones the API should take."""
    engine = default_engine()
    gated = Gated()
    first = enrolled[0].photos[0].read_bytes()
    with contextlib.suppress(EnrolmentRefused, InvalidPhoto):
        vision.enrolment(engine, first)  # loads the weights, which no request pays for
    for identity in enrolled:
        for path in identity.photos:
            photo = Photo(identity.name, path, path.read_bytes())
            try:
                vision.enrolment(engine, photo.data)
            except EnrolmentRefused as refused:
                gated.refused.append((photo, str(refused.extra["gate"])))
                continue
            except InvalidPhoto as invalid:
                gated.refused.append((photo, invalid.code))
                continue
            gated.accepted.append(photo)
    return gated


def _bare(sequence: list[Photo]) -> float:
    """Enrolments per CPU-second of the bare pipeline in this process, on the photos the API
    is sent, in the same order."""
    engine = default_engine()
    cpu = time.process_time()
    for photo in sequence:
        vision.enrolment(engine, photo.data)
    return len(sequence) / (time.process_time() - cpu)


class Admin:
    """The org admin's HTTP calls used to set up people and consent (not timed)."""

    def __init__(self, port: int, token: str) -> None:
        self.client = httpx.Client(
            base_url=f"http://{HOST}:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )

    def person(self, code: str) -> str:
        body = {"code": code, "full_name": f"Bench person {code}"}
        response = self.client.post(f"{API}/people", json=body)
        expect(response.status_code, 201, response.content, "create a person")
        person: str = response.json()["id"]
        consent = {"given_by": f"Bench person {code}", "purpose": "Attendance by face"}
        response = self.client.post(f"{API}/people/{person}/consents", json=consent)
        expect(response.status_code, 201, response.content, "record consent")
        return person


def _enrol(client: httpx.Client, person: str, photo: Photo) -> httpx.Response:
    files = {"photo": (photo.path.name, photo.data, "image/jpeg")}
    return client.post(f"{API}/people/{person}/faces", files=files)


def _answer(response: httpx.Response) -> str:
    """The status, and the gate or error code of a refusal."""
    if response.status_code != 422:
        return str(response.status_code)
    problem = json.loads(response.content)
    return f"422 {problem.get('gate') or problem.get('code')}"


def _level(port: int, token: str, pid: int, clients: int, work: list[tuple[str, Photo]]) -> Level:
    """`clients` threads, each with its own connection, taking the next photo as soon as
    their last one is answered."""
    level = Level(clients)
    lock = threading.Lock()
    pending = iter(work)

    def drive() -> None:
        with httpx.Client(
            base_url=f"http://{HOST}:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=300,
        ) as client:
            while True:
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                sent = time.perf_counter()
                try:
                    response = _enrol(client, *item)
                except httpx.HTTPError as exc:  # counted, rather than losing the thread
                    with lock:
                        level.failures.append(repr(exc))
                    continue
                elapsed_ms = (time.perf_counter() - sent) * 1000
                with lock:
                    level.latencies_ms.append(elapsed_ms)
                    if response.status_code == 201:
                        level.enrolled += 1
                    elif response.status_code == 422:
                        level.refused[_answer(response).removeprefix("422 ")] += 1
                    else:
                        level.failures.append(f"{response.status_code}: {response.text[:200]}")

    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=drive) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    level.wall_s = time.perf_counter() - started
    cpu_after = cpu_seconds(pid)
    if cpu_before is None or cpu_after is None:
        raise BenchError("the server's CPU time cannot be read (/proc is needed)")
    level.server_cpu_s = cpu_after - cpu_before
    if level.enrolled == 0:
        raise BenchError(f"nothing was enrolled: {level.refused} {level.failures[:1]}")
    return level


def run(photos: int, clients: tuple[int, ...]) -> Report:
    if not available():
        raise BenchError(f"the faces corpus is missing: {FACES}")
    report = Report(busy_share(), photos)
    enrolled = [identity for identity in identities() if not identity.stranger]
    say(f"gating the photos of {len(enrolled)} identities in-process")
    report.gated = _gate(enrolled)
    if not report.gated.accepted:
        raise BenchError("the gates accepted no corpus photo")
    accepted = report.gated.accepted
    sequence = [accepted[i % len(accepted)] for i in range(photos)]
    say(f"the bare pipeline on the {photos} photos")
    report.bare_runs.append(_bare(sequence))
    with contextlib.ExitStack() as stack:
        data_dir = stack.enter_context(scratch_dir())
        env = child_env(data_dir, SETTINGS)
        say("starting touchstone")
        server = stack.enter_context(
            serving("touchstone", SERVE, env, data_dir, data_dir / "serve.log", READY_PATH)
        )
        server.wait_ready()
        create_org(
            env,
            data_dir,
            name="Bench Enrol",
            slug=ORG_SLUG,
            admin_email=ADMIN,
            password=PASSWORD,
        )
        token = sign_in(server.port, ADMIN, PASSWORD, ORG_SLUG)
        admin = Admin(server.port, token)
        stack.callback(admin.client.close)
        warm_up = admin.person("warm-up")
        response = _enrol(admin.client, warm_up, accepted[0])  # the server loads its engine
        expect(response.status_code, 201, response.content, "the warm-up enrolment")
        for count in clients:
            people = {
                name: admin.person(f"c{count}-{number:03d}")
                for number, name in enumerate(sorted({p.identity for p in accepted}))
            }
            work = [(people[photo.identity], photo) for photo in sequence]
            say(f"enrolling {len(work)} photos with {count} client(s)")
            report.levels.append(_level(server.port, token, server.process.pid, count, work))
        for photo, _ in report.gated.refused:
            person = admin.person(f"refused-{len(report.gated.api_answers):03d}")
            answer = _answer(_enrol(admin.client, person, photo))
            report.gated.api_answers[str(photo.path.relative_to(FACES))] = answer
    say("the bare pipeline again")
    report.bare_runs.append(_bare(sequence))
    report.finished = finished_at()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--photos", type=int, default=DEFAULT_PHOTOS, help="enrolments per client level"
    )
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=list(DEFAULT_CLIENTS),
        help="concurrent clients, one level each",
    )
    options = parser.parse_args(argv)
    if options.photos < 2:
        parser.error("--photos needs at least 2 (for percentiles)")
    return run_main(lambda: run(options.photos, tuple(options.clients)), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
