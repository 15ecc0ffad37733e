"""Benchmark every authenticated GET route of the API, and three representative writes.

The routes come from the served `/openapi.json`, not from a list: every GET under /api/v1
that answers 401 without a credential is measured with the org admin's token, so a route
added later is measured without editing this file. Path parameters are filled from the
collection GET before each one (`/a/{x}/b` takes an `id` from `GET /a`); only where no
collection route exists does a parameter name take a seeded value (printed); a required
query parameter takes the seeded value of its name (printed; `q` a word of the research
source). A route that cannot be filled, or does not answer 200, counts as a missed goal.
Event streams cannot be measured in requests per second and are skipped (printed).

Every module's data is seeded through the API first: org, appraisals (a live purity test),
statements, research (Wikipedia's "Duck" page from ../shared/corpora/docs and an analysis of
it), AR content (MindAR's card and a 10 s clip from ../shared/corpora/ar, published),
webhooks and attendance. One job worker runs for the statements, research and AR seeding,
and none while measuring.

Each route is measured against a bare FastAPI endpoint (bench/baseline_app.py) in the same
run: a copy of the users page for reads; for writes, a Pydantic-validated JSON body inserted
with psycopg into a scratch copy of `branches`. Goals: each GET route reaches at least 30% of
the bare endpoint's req/s, each write at least 50% of the bare insert. Writes measured:
`POST /api/v1/branches` without and with a fresh `Idempotency-Key`, and `POST
/api/v1/batches`, which has no form without a file: one 1-page statement PDF is uploaded.

Per route: a 1 s warm-up of each server, then 3 rounds of 2 s per server, the order swapped
each round (this machine's speed drifts within seconds); the share is the median round's.
That is 14 s a route: 32 GET routes and 3 writes took 9 minutes on 2 cores, about one of
them start-up and seeding (`--rounds`, `--duration`, `--warmup` trade time for steadier
figures).

Run from the checkout: `python -m bench.routes`; `--help` for options.
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run, 130
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import itertools
import json
import re
import statistics
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.baseline_app import (
    DATABASE_ENV,
    ORG_ENV,
    PAYLOAD_ENV,
    POOL_SIZE_ENV,
    create_scratch_table,
)
from bench.common import (
    HOST,
    NO_WORKER,
    RATE_LIMITS,
    READY_PATH,
    RESULTS_DIR,
    ROOT,
    SERVE,
    UNREFUSED_LIMIT,
    BenchError,
    Child,
    RequestFactory,
    Server,
    busy_share,
    child_env,
    cpu_seconds,
    create_org,
    database_urls,
    describe_busy,
    expect,
    finished_at,
    http_request,
    machine,
    python_load,
    raw_request,
    run_main,
    say,
    scratch_dir,
    serving,
    supervised,
    verdict,
)
from bench.generators.statements import generate_statement
from bench.samples import clip_frames, stream_clip
from touchstone.appraisal.purity.pipeline import Karat
from touchstone.core.postgres import libpq_dsn

RESULTS = RESULTS_DIR / "routes.json"
API = "/api/v1"
GET_GOAL = 0.30
WRITE_GOAL = 0.50
ORG_SLUG = "bench-routes"
DOMAIN = "bench-routes.example.com"
ADMIN = f"admin@{DOMAIN}"
PASSWORD = "bench-routes-" + uuid.uuid4().hex
BARE_READ = f"{API}/users?limit=20"
BARE_WRITE = f"{API}/branches"
UPLOAD = f"{API}/batches"
PAGE_QUERY = "limit=20"
PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
MAX_CANDIDATES = 20
"""Items of a collection tried, in order, until the route answers 200 for one."""
CORPORA = ROOT.parent / "shared" / "corpora"
RESEARCH_SOURCE = CORPORA / "docs" / "docling" / "wiki_duck.html"
AR_MARKER = CORPORA / "ar" / "mindar" / "card.png"
AR_VIDEO = CORPORA / "ar" / "videos" / "mov_bbb.mp4"
SETTINGS = {
    **NO_WORKER,
    **RATE_LIMITS,
    "RATE_LIMIT_UPLOADS": UNREFUSED_LIMIT,
    # The plan's page quota is still checked on every upload, but never reached.
    "STATEMENTS_PLAN_QUOTAS": '{"free": 1000000000}',
    "DOCS_ENABLED": "true",  # /openapi.json: mounted after the API, off the measured path
    # Webhooks aimed at a closed local port: nothing is ever sent (no worker while measuring).
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
}
SERVER_SETTINGS = "uvicorn, 1 worker, log_config=None, access_log=False, LOG_LEVEL=WARNING"
BARE_READ_KIND = "bare FastAPI GET returning a captured users page through a response model"
BARE_WRITE_KIND = (
    "bare FastAPI POST: a Pydantic-validated JSON body inserted with psycopg (a pool as "
    "large as Touchstone's, the runtime role) into a scratch copy of `branches`, the row "
    "returned with 201"
)
UPLOAD_NOTE = (
    "POST /api/v1/batches takes files only (no metadata-only form): measured with one "
    "1-page statement PDF per request, against the same bare insert"
)


@dataclass(frozen=True)
class Options:
    rounds: int
    duration_s: float
    warmup_s: float
    connections: int
    members: int
    only: re.Pattern[str] | None = None
    """Measure only the targets whose name this matches (a developer's quick look)."""

    def describe(self) -> str:
        return (
            f"built-in Python generator (asyncio, keep-alive), one thread, {self.connections} "
            f"connections; per route a {self.warmup_s:g} s warm-up of each server, then "
            f"{self.rounds} rounds of {self.duration_s:g} s per server, alternating"
        )

    @property
    def seconds_per_target(self) -> float:
        return 2 * (self.warmup_s + self.rounds * self.duration_s)


# --- the API as a client sees it -------------------------------------------------------------


class Session:
    """One member signed in; signs in again before the token would expire mid-measurement."""

    def __init__(self, client: httpx.Client, email: str) -> None:
        self.client, self.email = client, email
        self.token, self.expires = "", 0.0
        self._sign_in()

    def _sign_in(self) -> None:
        form = {"username": self.email, "password": PASSWORD, "org": ORG_SLUG}
        response = self.client.post(f"{API}/auth/token", data=form)
        expect(response.status_code, 200, response.content, f"sign in as {self.email}")
        body = response.json()
        self.token = body["access_token"]
        self.expires = time.monotonic() + body["expires_in"]

    def headers(self, valid_for_s: float = 60.0) -> dict[str, str]:
        if time.monotonic() + valid_for_s > self.expires:
            self._sign_in()
        return {"Authorization": f"Bearer {self.token}"}

    def call(self, method: str, path: str, status: int, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        response = self.client.request(method, path, headers=headers, **kwargs)
        expect(response.status_code, status, response.content, f"{method} {path}")
        return response

    def create(self, path: str, body: dict[str, Any]) -> str:
        created: str = self.call("POST", path, 201, json=body).json()["id"]
        return created


# --- seed data --------------------------------------------------------------------------------


@dataclass
class Seeded:
    org_id: uuid.UUID
    admin: Session
    fallback: dict[str, str] = field(default_factory=dict)
    """Seeded values by path parameter name, for parameters without a collection route."""
    query: dict[str, str] = field(default_factory=dict)
    """Seeded values by query parameter name, for required query parameters."""
    users_page: bytes = b""


CITIES = ("Chennai", "Madurai", "Coimbatore", "Salem")
MEMBER_ROLES = ("appraiser", "branch_manager", "analyst", "viewer")
CUSTOMERS = (
    "Lakshmi Iyer",
    "Arjun Raman",
    "Meena Subramanian",
    "Karthik Natarajan",
    "Divya Krishnan",
    "Suresh Babu",
    "Priya Venkatesh",
    "Ravi Shankar",
)
ITEMS = (
    {"item_type": "ring", "count": 1, "gross_weight_g": "10.000", "deduction_g": "0.500"},
    {"item_type": "chain", "count": 1, "gross_weight_g": "20.250", "deduction_g": "0"},
    {"item_type": "bangle", "count": 2, "gross_weight_g": "31.400", "deduction_g": "1.200"},
)


def _seed_org(client: httpx.Client, env: dict[str, str], cwd: Path, members: int) -> Seeded:
    """Branches, members of every role, API keys, gold rates and a device."""
    org_id = create_org(
        env, cwd, name="Bench Routes", slug=ORG_SLUG, admin_email=ADMIN, password=PASSWORD
    )
    seeded = Seeded(org_id, Session(client, ADMIN))
    admin = seeded.admin
    branches = [
        admin.create(f"{API}/branches", {"name": f"{city} branch", "code": city[:3].upper()})
        for city in CITIES
    ]
    # The first two members are the main branch's appraiser and manager (maker-checker).
    member_ids: list[str] = []
    for number in range(members):
        role = MEMBER_ROLES[number % len(MEMBER_ROLES)]
        member = {
            "email": f"member{number:03d}@{DOMAIN}",
            "full_name": f"Bench Member {number:03d}",
            "role": role,
            "branch_id": None if role == "analyst" else branches[number // 4 % len(branches)],
            "password": PASSWORD,
        }
        member_ids.append(admin.create(f"{API}/users", member))
    for name, scopes in (
        ("Reporting", ["statements:read", "usage:read"]),
        ("Branch app", ["appraisals:read", "customers:read"]),
        ("Directory sync", ["users:read", "users:write"]),
    ):
        admin.create(f"{API}/api-keys", {"name": name, "scopes": scopes})
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    for rate in (
        {"karat": "24K", "rate_per_g": "6900.00", "effective_from": yesterday},
        {"karat": "24K", "rate_per_g": "7000.00"},
        {"karat": "22K", "rate_per_g": "6420.00"},
    ):
        admin.create(f"{API}/gold-rates", rate)
    admin.create(f"{API}/devices", {"name": "Counter tablet 1", "appraiser_id": member_ids[0]})
    return seeded


def _seed_appraisals(seeded: Seeded, port: int) -> None:
    """Customers, draft appraisals, and one appraisal taken through a live purity test,
    valuation, approval and certificate: created last, so it heads the list."""
    client = seeded.admin.client
    appraiser = Session(client, f"member000@{DOMAIN}")
    manager = Session(client, f"member001@{DOMAIN}")
    customers = [
        appraiser.create(
            f"{API}/customers",
            {
                "full_name": name,
                "phone": f"+91 98400 {number:05d}",
                "id_document_type": "aadhaar",
                "id_number": f"4821 7730 {number:04d}",
            },
        )
        for number, name in enumerate(CUSTOMERS)
    ]
    for number, customer in enumerate(customers[:-1]):
        appraisal = appraiser.create(f"{API}/appraisals", {"customer_id": customer})
        for body in ITEMS[: 1 + number % len(ITEMS)]:
            appraiser.create(f"{API}/appraisals/{appraisal}/items", body)
    appraisal = appraiser.create(f"{API}/appraisals", {"customer_id": customers[-1]})
    item = appraiser.create(f"{API}/appraisals/{appraisal}/items", ITEMS[0])
    session = appraiser.call(
        "POST", f"{API}/appraisals/{appraisal}/items/{item}/purity-sessions", 201
    ).json()
    seeded.fallback["test_id"] = session["id"]
    say("streaming a purity test clip (about 10 s)")
    url = f"ws://{HOST}:{port}{session['websocket_url']}?access_token={appraiser.token}"
    if asyncio.run(stream_clip(url, clip_frames(Karat.K22, seed=3))) is None:
        raise BenchError("the seeded purity test did not complete")
    valued = appraiser.call(
        "POST", f"{API}/appraisals/{appraisal}/valuation", 200, json={"requested_amount": "40000"}
    ).json()
    if not valued["valuation"]["all_checks_passed"]:
        raise BenchError(f"the seeded appraisal failed its lending checks: {valued['valuation']}")
    manager.call("POST", f"{API}/appraisals/{appraisal}/approve", 200, json={"comment": "Checked"})
    manager.call("POST", f"{API}/appraisals/{appraisal}/certificate", 201)
    evidence = seeded.admin.call("GET", f"{API}/appraisals/{appraisal}/evidence", 200).json()
    if not evidence:
        raise BenchError("the seeded purity test kept no evidence")
    path = urllib.parse.urlsplit(evidence[0]["download_url"]).path
    seeded.fallback["key"] = path.removeprefix(f"{API}/files/")


def _worker(env: dict[str, str], data_dir: Path) -> Child:
    """A job worker for the seeding that needs one (none runs while measuring)."""
    return Child(
        "worker",
        [sys.executable, "-m", "touchstone.cli", "worker", "--no-migrate"],
        env,
        data_dir,
        data_dir / "worker.log",
    )


def _wait_for(
    worker: Child,
    admin: Session,
    url: str,
    what: str,
    done: Callable[[dict[str, Any]], bool],
    failed: Callable[[dict[str, Any]], bool] = lambda state: state["status"] == "failed",
    timeout_s: float = 300,
) -> None:
    """Poll `url` until the worker has finished `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker.check_running()
        state = admin.call("GET", url, 200).json()
        if failed(state):
            raise BenchError(f"the seeded {what} failed: {state}")
        if done(state):
            return
        time.sleep(0.5)
    raise BenchError(f"the seeded {what} was not done within {timeout_s:g} s")


def _seed_statements(seeded: Seeded, worker: Child) -> None:
    """Rules, then a batch of two statements read by the worker, so its transactions and
    workbook exist."""
    admin = seeded.admin
    for rule in (
        {"name": "Groceries", "category": "groceries", "keywords": ["TESCO", "SAINSBURY"]},
        {"name": "Rent", "category": "rent", "keywords": ["RENT"], "direction": "debit"},
        {"name": "Salary", "category": "salary", "keywords": ["PAYROLL"], "direction": "credit"},
    ):
        admin.create(f"{API}/statement-rules", rule)
    files = [
        ("files", (f"{layout}.pdf", generate_statement(layout, seed=seed).pdf, "application/pdf"))
        for seed, layout in enumerate(("ruled_uk", "european"), start=1)
    ]
    created = admin.call("POST", f"{API}/batches", 202, files=files, data={"label": "March"})
    seeded.fallback["job_id"] = created.headers["Location"].rsplit("/", 1)[1]
    say("reading the seeded statement batch")
    _wait_for(
        worker,
        admin,
        f"{API}/batches/{created.json()['id']}",
        "batch",
        lambda state: state["status"] == "done" and bool(state["report_url"]),
    )


def _seed_research(seeded: Seeded, worker: Child) -> None:
    """Wikipedia's "Duck" page as a source, extracted by the worker, and one analysis of it
    run to its report; `q` for the search takes a word the page holds."""
    admin = seeded.admin
    page = ("wiki_duck.html", RESEARCH_SOURCE.read_bytes(), "text/html")
    source = admin.call(
        "POST", f"{API}/research/sources", 202, files={"file": page}, data={"title": "Duck"}
    ).json()["id"]
    say("extracting the seeded research source")
    _wait_for(
        worker,
        admin,
        f"{API}/research/sources/{source}",
        "research source",
        lambda state: state["status"] == "ready",
    )
    question = {"question": "What do ducks eat?", "source_ids": [source]}
    analysis = admin.call("POST", f"{API}/research/analyses", 202, json=question).json()["id"]
    say("running the seeded research analysis")
    _wait_for(
        worker,
        admin,
        f"{API}/research/analyses/{analysis}",
        "research analysis",
        lambda state: state["status"] == "done",
    )
    seeded.query["q"] = "duck"
    search = admin.call("GET", f"{API}/research/search", 200, params=seeded.query).json()
    if not search["items"]:
        raise BenchError(f"the seeded research source has no passage matching {seeded.query}")


def _seed_arcontent(seeded: Seeded, worker: Child) -> None:
    """A project with one published content (the QR codes are a published content's): the
    MindAR card as its marker, a 10 s clip processed by the worker as its video.

    Only a company holds AR projects; the bench org is one, being made with `orgs create`'s
    default kind (the bank modules seeded above do not look at the kind)."""
    admin = seeded.admin
    project = admin.create(f"{API}/arcontent/projects", {"name": "Spring posters"})
    content = admin.create(f"{API}/arcontent/projects/{project}/contents", {"title": "Poster"})
    url = f"{API}/arcontent/contents/{content}"
    marker = {"file": (AR_MARKER.name, AR_MARKER.read_bytes(), "image/png")}
    admin.call("PUT", f"{url}/marker", 200, files=marker)
    video = {"file": (AR_VIDEO.name, AR_VIDEO.read_bytes(), "video/mp4")}
    admin.call("PUT", f"{url}/video", 202, files=video)
    say("processing the seeded AR overlay video")
    _wait_for(
        worker,
        admin,
        url,
        "AR overlay video",
        lambda state: state["processing"] == "ready",
        failed=lambda state: state["processing"] == "failed",
    )
    for status in ("in_review", "published"):
        admin.call("POST", f"{url}/transitions", 200, json={"to": status})
    # Contents are listed under their project only: /arcontent/contents is no collection.
    seeded.fallback["content_id"] = content


def _seed_webhooks(seeded: Seeded) -> None:
    """Two receivers, each pinged once so each has a delivery (left pending)."""
    for topic in ("appraisal", "statements"):
        webhook = seeded.admin.create(
            f"{API}/webhooks",
            {
                "url": f"https://127.0.0.1:9/hooks/{topic}",
                "description": f"{topic} events",
                "topics": [f"{topic}.*"],
            },
        )
        seeded.admin.call("POST", f"{API}/webhooks/{webhook}/ping", 202)


def _seed_attendance(seeded: Seeded) -> None:
    """A class of 20 students with consent, and a session (which has no collection route)."""
    admin = seeded.admin
    group = admin.create(f"{API}/attendance/groups", {"name": "10A"})
    students = []
    for number in range(1, 21):
        student = admin.create(
            f"{API}/attendance/people", {"code": f"SV{number:03}", "full_name": f"Student {number}"}
        )
        consent = {"given_by": "Guardian", "purpose": "attendance by face recognition"}
        admin.call("POST", f"{API}/attendance/people/{student}/consents", 201, json=consent)
        students.append(student)
    admin.call(
        "POST", f"{API}/attendance/groups/{group}/members", 200, json={"person_ids": students}
    )
    session = admin.create(f"{API}/attendance/groups/{group}/sessions", {"label": "Period 1"})
    seeded.fallback["session_id"] = session


def _seed(
    client: httpx.Client, env: dict[str, str], data_dir: Path, port: int, members: int
) -> Seeded:
    seeded = _seed_org(client, env, data_dir, members)
    _seed_appraisals(seeded, port)
    say("starting a worker for the seeded jobs")
    with supervised(_worker(env, data_dir)) as worker:
        _seed_statements(seeded, worker)
        _seed_research(seeded, worker)
        _seed_arcontent(seeded, worker)
    # After the worker has stopped: the webhooks' pings stay pending, nothing is sent.
    _seed_webhooks(seeded)
    _seed_attendance(seeded)
    seeded.users_page = seeded.admin.call("GET", BARE_READ, 200).content
    return seeded


# --- routes from the OpenAPI document ----------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    path: str
    paged: bool
    """It takes `limit`: called with a page of 20, as a client lists."""
    documented_stream: bool
    required: tuple[str, ...] = ()
    """Its required query parameters: each takes the seeded value of that name."""


def _operations(spec: dict[str, Any]) -> dict[str, Operation]:
    """Every GET under /api/v1, by path template, in the document's order."""
    found = {}
    for path, item in spec["paths"].items():
        get = item.get("get")
        if not path.startswith(f"{API}/") or get is None:
            continue
        parameters = [p for p in get.get("parameters", []) if p.get("in") == "query"]
        query = {p["name"] for p in parameters}
        content = {
            kind
            for answer in get.get("responses", {}).values()
            for kind in answer.get("content", {})
        }
        found[path] = Operation(
            path,
            "limit" in query,
            any(k.startswith("text/event-stream") for k in content),
            tuple(p["name"] for p in parameters if p.get("required")),
        )
    return found


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    @property
    def event_stream(self) -> bool:
        return self.content_type.startswith("text/event-stream")

    def head(self) -> str:
        return self.body[:200].decode(errors="replace")


def _probe(port: int, url: str, headers: dict[str, str]) -> Answer:
    """One GET; an event stream's body is not read (it would not end)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", url, headers=headers)
        response = connection.getresponse()
        content_type = response.getheader("Content-Type") or ""
        body = b"" if content_type.startswith("text/event-stream") else response.read()
        return Answer(response.status, content_type, body)
    finally:
        connection.close()


_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def _url(segments: list[str], operation: Operation, query: dict[str, str]) -> str:
    """The path, with a page of 20 if it pages and the seeded values of its required query
    parameters."""
    parts = [PAGE_QUERY] if operation.paged else []
    required = {name: query[name] for name in operation.required if name in query}
    parts += [urllib.parse.urlencode(required)] if required else []
    return "/".join(segments) + (f"?{'&'.join(parts)}" if parts else "")


@dataclass(frozen=True)
class Resolved:
    operation: Operation
    url: str
    sources: dict[str, str]
    """Where each path parameter came from."""
    answer: Answer
    query: dict[str, str] = field(default_factory=dict)
    """The seeded values its required query parameters took."""

    @property
    def used_fallback(self) -> list[str]:
        return [name for name, source in self.sources.items() if source == "seeded value"]


class Resolver:
    """Fills path parameters from the collection route before each one, else from seeds;
    required query parameters from seeds."""

    def __init__(
        self, port: int, admin: Session, operations: dict[str, Operation], seeded: Seeded
    ) -> None:
        self.port, self.admin, self.operations = port, admin, operations
        self.seeded, self.query = seeded.fallback, seeded.query
        self._ids: dict[str, list[str]] = {}

    def _collection_ids(self, url: str, template: str) -> list[str]:
        """The `id`s of a collection's first page (`{"items": [...]}` or a bare list)."""
        full = _url(url.split("/"), self.operations[template], self.query)
        if full not in self._ids:
            answer = _probe(self.port, full, self.admin.headers())
            try:
                found: Any = json.loads(answer.body) if answer.status == 200 else []
            except ValueError:
                found = []
            items = found.get("items", []) if isinstance(found, dict) else found
            self._ids[full] = [
                str(item["id"]) for item in items if isinstance(item, dict) and "id" in item
            ]
        return self._ids[full]

    def _candidates(
        self, segments: list[str], done: list[str], sources: dict[str, str], missing: list[str]
    ) -> Iterator[tuple[list[str], dict[str, str]]]:
        if len(done) == len(segments):
            yield done, sources
            return
        segment = segments[len(done)]
        parameter = _PARAMETER.fullmatch(segment)
        if parameter is None:
            yield from self._candidates(segments, [*done, segment], sources, missing)
            return
        name = parameter[1]
        template = "/".join(segments[: len(done)])
        ids = self._collection_ids("/".join(done), template) if template in self.operations else []
        choices = [(value, f"GET {template} item {n}") for n, value in enumerate(ids, 1)]
        if not choices and name in self.seeded:
            choices = [(self.seeded[name], "seeded value")]
        if not choices:
            missing.append(name)
        for value, source in choices:
            yield from self._candidates(
                segments, [*done, value], {**sources, name: source}, missing
            )

    def resolve(self, operation: Operation) -> Resolved | str:
        """The first filled URL that answers 200 (or streams), else why there is none."""
        unfilled = [name for name in operation.required if name not in self.query]
        if unfilled:
            return f"cannot fill the required query parameters {unfilled}: no seeded value"
        query = {name: self.query[name] for name in operation.required}
        missing: list[str] = []
        first: Answer | None = None
        candidates = self._candidates(operation.path.split("/"), [], {}, missing)
        for segments, sources in itertools.islice(candidates, MAX_CANDIDATES):
            url = _url(segments, operation, query)
            answer = _probe(self.port, url, self.admin.headers())
            if answer.status == 200 or answer.event_stream:
                return Resolved(operation, url, sources, answer, query)
            first = first or answer
        if first is not None:
            return f"HTTP {first.status}: {first.head()}"
        return (
            f"cannot fill {{{', '.join(missing)}}}: no collection route with items, no seeded value"
        )


def _placeholder_url(operation: Operation, query: dict[str, str]) -> str:
    return _url(_PARAMETER.sub(PLACEHOLDER, operation.path).split("/"), operation, query)


# --- measuring --------------------------------------------------------------------------------


class Refused(Exception):
    """The measured route answered otherwise than expected under load, or dropped."""


@dataclass(frozen=True)
class Sample:
    """One server's turn in one round."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_s: float | None

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Endpoint:
    server: Server
    next_request: RequestFactory
    status: int
    bare: bool

    def sample(self, options: Options, duration_s: float) -> Sample:
        pid = self.server.process.pid
        cpu_before = cpu_seconds(pid)
        try:
            run = python_load(
                self.server.port,
                self.next_request,
                connections=options.connections,
                duration_s=duration_s,
                status=self.status,
            )
        except BenchError as exc:
            if self.bare:
                raise
            self.server.check_running()
            raise Refused(str(exc)) from exc
        cpu_after = cpu_seconds(pid)
        if run.failures:
            what = f"{run.failures} of {run.requests} answers were not {self.status}"
            detail = run.first_failure.decode(errors="replace")
            if self.bare:
                raise BenchError(f"the bare endpoint: {what}: {detail}")
            raise Refused(f"{what}, the first: {detail}")
        cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        return Sample(
            run.requests, run.elapsed_s, run.percentile_ms(50), run.percentile_ms(99), cpu
        )


@dataclass(frozen=True)
class Round:
    bare: Sample
    route: Sample

    @property
    def share(self) -> float:
        return self.route.requests_per_s / self.bare.requests_per_s


def _compare(options: Options, bare: Endpoint, route: Endpoint) -> list[Round]:
    """Warm both up, then measure them in turns, each round in the other order."""
    for endpoint in (bare, route):
        endpoint.sample(options, options.warmup_s)
    rounds = []
    for number in range(options.rounds):
        if number % 2 == 0:
            first = bare.sample(options, options.duration_s)
            rounds.append(Round(first, route.sample(options, options.duration_s)))
        else:
            first = route.sample(options, options.duration_s)
            rounds.append(Round(bare.sample(options, options.duration_s), first))
    return rounds


def _combined(samples: list[Sample]) -> dict[str, float | None]:
    """A server's rounds as one run; p50 and p99 are the medians of the rounds' own."""
    requests = sum(s.requests for s in samples)
    cpu = [s.cpu_s for s in samples if s.cpu_s is not None]
    return {
        "requests": requests,
        "requests_per_s": round(requests / sum(s.seconds for s in samples), 1),
        "p50_ms": round(statistics.median(s.p50_ms for s in samples), 2),
        "p99_ms": round(statistics.median(s.p99_ms for s in samples), 2),
        "server_cpu_us_per_request": (
            round(sum(cpu) * 1e6 / requests, 1) if len(cpu) == len(samples) else None
        ),
    }


@dataclass(frozen=True)
class Measured:
    target: Target
    rounds: list[Round]

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def goal(self) -> float:
        return GET_GOAL if self.target.kind == "read" else WRITE_GOAL

    @property
    def share(self) -> float:
        """The median round's: a round compares both servers at the same machine speed."""
        return statistics.median(r.share for r in self.rounds)

    @property
    def route(self) -> dict[str, float | None]:
        return _combined([r.route for r in self.rounds])

    @property
    def bare(self) -> dict[str, float | None]:
        return _combined([r.bare for r in self.rounds])

    @property
    def passed(self) -> bool:
        return self.share >= self.goal

    def to_json(self) -> dict[str, object]:
        return {
            "route": self.name,
            "kind": self.target.kind,
            "url": self.target.url,
            "path_parameters": self.target.sources,
            "note": self.target.note,
            "share": round(self.share, 4),
            "goal": self.goal,
            "touchstone": self.route,
            "bare": self.bare,
            "round_shares": [round(r.share, 4) for r in self.rounds],
            "pass": self.passed,
        }


@dataclass(frozen=True)
class NotMeasured:
    name: str
    why: str


def _constant(request: bytes) -> RequestFactory:
    return lambda: request


# --- writes -----------------------------------------------------------------------------------


def _branch_writes(port: int, headers: dict[str, str], prefix: str, keyed: bool) -> RequestFactory:
    """A branch with a code of its own each time, and a fresh key when `keyed`."""
    codes = (f"{prefix}{n:07d}" for n in itertools.count())
    json_headers = {**headers, "Content-Type": "application/json"}

    def next_request() -> bytes:
        code = next(codes)
        body = json.dumps({"name": f"Branch {code}", "code": code}).encode()
        extra = {"Idempotency-Key": uuid.uuid4().hex} if keyed else {}
        return raw_request(port, "POST", BARE_WRITE, {**json_headers, **extra}, body)

    return next_request


def _upload(port: int, headers: dict[str, str]) -> RequestFactory:
    """The same one-page statement each time (no worker reads them while measuring)."""
    boundary = uuid.uuid4().hex
    pdf = generate_statement("ruled_uk", seed=7, transactions=20).pdf
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="statement.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode()
        + pdf
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return _constant(raw_request(port, "POST", UPLOAD, {**headers, **content_type}, body))


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Report:
    options: Options
    busy_before: float | None
    measured: list[Measured] = field(default_factory=list)
    not_measured: list[NotMeasured] = field(default_factory=list)
    skipped: list[NotMeasured] = field(default_factory=list)
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    """Routes whose path parameters took a seeded value, with those parameters."""
    query_fallbacks: dict[str, dict[str, str]] = field(default_factory=dict)
    """Routes whose required query parameters took a seeded value, with those values."""
    idle_cpu_share: float | None = None
    """Touchstone's own CPU use with no request in flight (relay, listener): a share of a
    core that the CPU per request includes."""
    seconds: float = 0.0
    finished: str = ""

    @property
    def verdicts(self) -> dict[str, bool]:
        return {m.name: m.passed for m in self.measured} | {
            n.name: False for n in self.not_measured
        }

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "seconds": round(self.seconds, 1),
            "machine": machine(self.busy_before),
            "options": {
                "rounds": self.options.rounds,
                "duration_s": self.options.duration_s,
                "warmup_s": self.options.warmup_s,
                "connections": self.options.connections,
                "members": self.options.members,
            },
            "load_generator": self.options.describe(),
            "server": SERVER_SETTINGS,
            "server_idle_cpu_share": self.idle_cpu_share,
            "settings": SETTINGS,
            "bare": {"read": f"GET {BARE_READ}: {BARE_READ_KIND}", "write": BARE_WRITE_KIND},
            "goals": {"read": GET_GOAL, "write": WRITE_GOAL},
            "routes": [m.to_json() for m in self.measured],
            "not_measured": [{"route": n.name, "why": n.why} for n in self.not_measured],
            "skipped": [{"route": n.name, "why": n.why} for n in self.skipped],
            "seeded_values_used": self.fallbacks,
            "seeded_query_values_used": self.query_fallbacks,
            "pass": self.verdicts,
        }

    def _row(self, m: Measured) -> str:
        cpu = m.route["server_cpu_us_per_request"]
        return (
            f"{m.name:<60}{m.route['requests_per_s']:>9,.0f}{m.bare['requests_per_s']:>9,.0f}"
            f"{m.share:>8.1%}{'n/a' if cpu is None else f'{cpu:,.0f}':>9}"
            f"{m.route['p50_ms']:>8.1f}{m.route['p99_ms']:>8.1f}  "
            f"{verdict(m.passed)} (>= {m.goal:.0%})"
        )

    def table(self) -> str:
        rows = [
            "Every authenticated GET route under /api/v1, and three writes, each against a bare "
            "FastAPI endpoint in the same run",
            f"machine: {describe_busy(self.busy_before)} of the CPUs busy just before the run; "
            f"{self.seconds / 60:.1f} minutes in all",
            f"load: {self.options.describe()}",
            f"servers: {SERVER_SETTINGS}; Touchstone with production settings, "
            "rate limits raised but counted",
            f"Touchstone idle (no request in flight): {describe_busy(self.idle_cpu_share)} "
            "of a core",
            f"bare read: GET {BARE_READ}, {BARE_READ_KIND}",
            f"bare write: {BARE_WRITE_KIND}",
            "",
            f"{'route':<60}{'req/s':>9}{'bare':>9}{'share':>8}{'CPU µs':>9}{'p50 ms':>8}"
            f"{'p99 ms':>8}  verdict",
            *(self._row(m) for m in self.measured),
            "(share: the median round's req/s over the bare endpoint's; CPU µs: the uvicorn "
            "process per request, PostgreSQL's work not in it; p50/p99: Touchstone's)",
        ]
        notes = [f"  {m.name}: {m.target.note}" for m in self.measured if m.target.note]
        notes += [
            f"  {m.name}: {{{name}}} from {source} (earlier items did not answer 200)"
            for m in self.measured
            for name, source in m.target.sources.items()
            if " item " in source and not source.endswith(" item 1")
        ]
        if notes:
            rows += ["", "notes:", *notes]
        if self.fallbacks:
            rows += ["", "path parameters filled with a seeded value (no collection route):"]
            rows += [f"  {name}: {{{'}, {'.join(ps)}}}" for name, ps in self.fallbacks.items()]
        if self.query_fallbacks:
            rows += ["", "required query parameters filled with a seeded value:"]
            rows += [
                f"  {name}: {urllib.parse.urlencode(values)}"
                for name, values in self.query_fallbacks.items()
            ]
        if self.skipped:
            rows += ["", "skipped:", *(f"  {n.name}: {n.why}" for n in self.skipped)]
        if self.not_measured:
            rows += ["", "NOT MEASURED (counted as a missed goal):"]
            rows += [f"  {n.name}: {n.why}" for n in self.not_measured]
        slowest = sorted(self.measured, key=lambda m: m.share)[:10]
        rows += ["", "slowest ten by share:"]
        rows += [f"  {m.share:>6.1%}  {m.name}" for m in slowest]
        failed = [name for name, passed in self.verdicts.items() if not passed]
        rows += [
            "",
            f"{len(self.verdicts) - len(failed)} of {len(self.verdicts)} goals met  "
            f"{verdict(not failed)}",
        ]
        return "\n".join(rows)


def _discover(port: int, seeded: Seeded, report: Report) -> list[Resolved]:
    """The measurable GET routes, each with a URL that answers 200 to the admin."""
    status, body = http_request(port, "GET", "/openapi.json")
    expect(status, 200, body, "GET /openapi.json (DOCS_ENABLED=true)")
    operations = _operations(json.loads(body))
    resolver = Resolver(port, seeded.admin, operations, seeded)
    routes = []
    for operation in operations.values():
        name = f"GET {operation.path}"
        if operation.documented_stream:
            report.skipped.append(NotMeasured(name, "an event stream (documented)"))
            continue
        anonymous = _probe(port, _placeholder_url(operation, seeded.query), {})
        if anonymous.status != 401:
            report.skipped.append(
                NotMeasured(name, f"public: HTTP {anonymous.status} without a credential")
            )
            continue
        resolved = resolver.resolve(operation)
        if isinstance(resolved, str):
            report.not_measured.append(NotMeasured(name, resolved))
        elif resolved.answer.event_stream:
            report.skipped.append(NotMeasured(name, "an event stream (text/event-stream)"))
        else:
            routes.append(resolved)
            if resolved.used_fallback:
                report.fallbacks[name] = resolved.used_fallback
            if resolved.query:
                report.query_fallbacks[name] = resolved.query
    return routes


@dataclass(frozen=True)
class Target:
    """What to measure against which bare endpoint; the requests are made just before, with
    a token that outlives the measurement."""

    name: str
    kind: str
    url: str
    requests: Callable[[dict[str, str]], tuple[RequestFactory, RequestFactory]]
    """(bare, Touchstone) request factories for the admin's headers."""
    status: int
    sources: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def bare_status(self) -> int:
        return 200 if self.kind == "read" else 201


def _targets(server: Server, baseline: Server, routes: list[Resolved]) -> list[Target]:
    def read(url: str) -> Callable[[dict[str, str]], tuple[RequestFactory, RequestFactory]]:
        return lambda headers: (
            _constant(raw_request(baseline.port, "GET", BARE_READ, headers)),
            _constant(raw_request(server.port, "GET", url, headers)),
        )

    # One sequence of codes for the bare table, whichever write it is compared with.
    bare_writes = _branch_writes(baseline.port, {}, "bare-", keyed=False)
    return [
        *(
            Target(f"GET {r.operation.path}", "read", r.url, read(r.url), 200, r.sources)
            for r in routes
        ),
        Target(
            f"POST {BARE_WRITE}",
            "write",
            BARE_WRITE,
            lambda h: (bare_writes, _branch_writes(server.port, h, "plain-", keyed=False)),
            201,
        ),
        Target(
            f"POST {BARE_WRITE} (Idempotency-Key)",
            "write",
            BARE_WRITE,
            lambda h: (bare_writes, _branch_writes(server.port, h, "keyed-", keyed=True)),
            201,
            note="a fresh key per request",
        ),
        Target(
            f"POST {UPLOAD} (1-page PDF)",
            "write",
            UPLOAD,
            lambda h: (bare_writes, _upload(server.port, h)),
            202,
            note=UPLOAD_NOTE,
        ),
    ]


def _measure_all(
    options: Options, server: Server, baseline: Server, admin: Session, targets: list[Target]
) -> tuple[list[Measured], list[NotMeasured]]:
    measured, refused = [], []
    for number, target in enumerate(targets, 1):
        headers = admin.headers(valid_for_s=options.seconds_per_target + 30)
        bare_requests, requests = target.requests(headers)
        try:
            rounds = _compare(
                options,
                Endpoint(baseline, bare_requests, target.bare_status, bare=True),
                Endpoint(server, requests, target.status, bare=False),
            )
        except Refused as why:
            refused.append(NotMeasured(target.name, str(why)[:400]))
            say(f"{number}/{len(targets)} {target.name}: NOT MEASURED: {str(why)[:200]}")
            continue
        result = Measured(target, rounds)
        measured.append(result)
        shares = ", ".join(f"{r.share:.0%}" for r in rounds)
        say(f"{number}/{len(targets)} {target.name}: {result.share:.1%} of bare ({shares})")
    return measured, refused


def _idle_cpu_share(pid: int, seconds: float = 2.0) -> float | None:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    after = cpu_seconds(pid)
    return None if before is None or after is None else (after - before) / seconds


def _bare_env(env: dict[str, str], data_dir: Path, seeded: Seeded) -> dict[str, str]:
    """The bare endpoints' settings: the captured page, and the scratch table to insert into
    through the runtime role Touchstone's requests use."""
    page = data_dir / "users-page.json"
    page.write_bytes(seeded.users_page)
    # The quota is a JSON map, which database_urls cannot take; it does not bear on the URLs.
    plain = {k: v for k, v in env.items() if k != "STATEMENTS_PLAN_QUOTAS"}
    with database_urls(plain) as (settings, urls):
        create_scratch_table(libpq_dsn(urls.admin), settings.database_runtime_role)
        return {
            **env,
            PAYLOAD_ENV: str(page),
            DATABASE_ENV: libpq_dsn(urls.runtime),
            ORG_ENV: str(seeded.org_id),
            POOL_SIZE_ENV: str(settings.database_pool_size),
        }


def run(options: Options) -> Report:
    missing = [str(path) for path in (RESEARCH_SOURCE, AR_MARKER, AR_VIDEO) if not path.is_file()]
    if missing:
        raise BenchError(
            f"seed files missing ({', '.join(missing)}): ../shared/corpora must sit "
            "beside the checkout"
        )
    started = time.perf_counter()
    report = Report(options, busy_share())
    with contextlib.ExitStack() as stack:
        data_dir = stack.enter_context(scratch_dir())
        env = child_env(data_dir, SETTINGS)
        say(f"starting touchstone on a fresh data dir {data_dir}")
        server = stack.enter_context(
            serving("touchstone", SERVE, env, data_dir, data_dir / "serve.log", READY_PATH)
        )
        server.wait_ready()
        say(f"seeding an org with {options.members} members and every module's data")
        client = stack.enter_context(
            httpx.Client(base_url=f"http://{HOST}:{server.port}", timeout=60)
        )
        seeded = _seed(client, env, data_dir, server.port, options.members)
        bare_command = [sys.executable, "-m", "bench.baseline_app"]
        bare_env = _bare_env(env, data_dir, seeded)
        baseline = stack.enter_context(
            serving("baseline", bare_command, bare_env, ROOT, data_dir / "bare.log", BARE_READ)
        )
        baseline.wait_ready()
        if http_request(baseline.port, "GET", BARE_READ)[1] != seeded.users_page:
            raise BenchError(
                "the bare users page differs from Touchstone's: bring the models in "
                "bench/baseline_app.py back in line with Page[MemberOut]"
            )
        targets = _targets(server, baseline, _discover(server.port, seeded, report))
        if options.only is not None:
            targets = [target for target in targets if options.only.search(target.name)]
        report.idle_cpu_share = _idle_cpu_share(server.process.pid)
        say(f"measuring {len(targets)} routes and writes")
        measured, refused = _measure_all(options, server, baseline, seeded.admin, targets)
        report.measured = measured
        report.not_measured += refused
    report.seconds = time.perf_counter() - started
    report.finished = finished_at()
    return report


def _parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per route (default 3)")
    parser.add_argument(
        "--duration", type=float, default=2.0, help="seconds per server and round (default 2)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="warm-up seconds per server and route (1)"
    )
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument(
        "--members", type=int, default=24, help="members besides the admin (at least 20)"
    )
    parser.add_argument(
        "--only",
        type=re.compile,
        help="measure only routes and writes whose name matches this regular expression "
        "(e.g. 'POST'); the goals then hold for those alone",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.warmup <= 0 or args.connections < 1:
        parser.error("rounds, duration, warm-up and connections must be positive")
    if args.members < 20:
        parser.error("--members must be at least 20, so the bare page of 20 is full")
    return Options(
        args.rounds, args.duration, args.warmup, args.connections, args.members, args.only
    )


def main(argv: list[str] | None = None) -> int:
    options = _parse_args(argv)
    return run_main(lambda: run(options), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
