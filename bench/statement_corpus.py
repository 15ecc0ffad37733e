"""Benchmark statement reading on the outside corpus: statements nobody here made.

Per part (development, held-out; see `bench/corpus.py` for the split):
- statements verified / statements that should verify (text layer, printed summary
  reconciles, truth lists transactions): goal >= 95% on the held-out part;
- transaction F1 on (date, signed amount) where truth lists transactions: goal >= 0.99;
- tampered copies that come out `verified`: goal 0. Each statement that verifies is edited
  for real (`bench.corpus.edit_pdf`: one word changed in its text object, the page's content
  written again by pdfium) and read again: one amount in a dated row, and the first printed
  opening/closing/total figure, each saved as an incremental update and as a rewritten file.
  An edit counts only where its control (the same page written again unchanged) reads as the
  original. Also reported: how many incremental edits the document signals flag
  (`incremental_updates` up by one), and a changed name, saved both ways (no balance can see
  it: an incremental one shows as a page whose text differs from the file's first revision,
  which keeps the statement from `verified`; a file rewritten whole keeps no revision to
  compare with), and how many of those come out `verified`;
- text-layer pages per second per core END TO END THROUGH THE JOB: a fresh Touchstone
  (`touchstone serve` on a scratch data dir, its embedded PostgreSQL) and one idle `touchstone
  worker --concurrency 1`; the corpus's text-layer statements uploaded with
  `POST /api/v1/batches` (at most 20 files a batch) and read by the worker's `process_batch`
  job (reading, checks, categories, rows written, workbook built). Pages over the worker
  process's CPU seconds from the first upload to the last batch finished: goal >= 50. The
  worker has read one generated statement first, as a running worker has (a fresh process
  pays once for compiling patterns and loading modules). Beside
  it, the raw pypdfium2 text floor (open, `get_text_range()` of every page) measured in the
  same run, the ratio between the two, and `extract_statement` alone in this process.

Run from the checkout: `python -m bench.statement_corpus` (`--no-job` skips the job run).
Exit status: 0 every goal met, 1 a goal missed, 2 the benchmark could not run (e.g.
`../shared` is missing).
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pypdfium2 as pdfium

from bench.common import (
    HOST,
    NO_WORKER,
    RATE_LIMITS,
    READY_PATH,
    RESULTS_DIR,
    SERVE,
    UNREFUSED_LIMIT,
    BenchError,
    Child,
    busy_share,
    child_env,
    cpu_seconds,
    create_org,
    describe_busy,
    expect,
    finished_at,
    machine,
    run_main,
    say,
    scratch_dir,
    serving,
    sign_in,
    supervised,
    tail,
    verdict,
)
from bench.corpus import (
    DEVELOPMENT,
    HELD_OUT,
    CorpusStatement,
    Edit,
    EditedPdf,
    available,
    edit_pdf,
    f1_counts,
    statements,
)
from bench.generators.statements import generate_statement
from touchstone.statements.domain import ExtractedStatement, StatementStatus
from touchstone.statements.extraction import ExtractionLimits, extract_statement

RESULTS = RESULTS_DIR / "statement_corpus.json"
GOAL_VERIFIED = 0.95
GOAL_F1 = 0.99
GOAL_PAGES_PER_S = 50.0
LIMITS = ExtractionLimits()
API = "/api/v1"
MAX_FILES = 20  # STATEMENTS_MAX_FILES: files a batch takes
JOB_SETTINGS = {
    **NO_WORKER,
    **RATE_LIMITS,
    "RATE_LIMIT_UPLOADS": UNREFUSED_LIMIT,
    "STATEMENTS_PLAN_QUOTAS": '{"free": 1000000000}',
}
FINAL = {"done", "completed_with_errors", "failed"}
JOB_TIMEOUT_S = 600.0
EDIT_TRIES = 3  # words of a kind tried until pdfium's rewrite of the page reads as before
IDLE_CPU_S = 0.05  # a worker waiting for jobs uses less than this a second


@dataclass
class JobRun:
    """The corpus read through the API and a real worker."""

    pages: int = 0
    files: int = 0
    worker_cpu_s: float = 0.0
    wall_s: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def pages_per_cpu_s(self) -> float:
        return self.pages / self.worker_cpu_s if self.worker_cpu_s else 0.0

    @property
    def pages_per_wall_s(self) -> float:
        return self.pages / self.wall_s if self.wall_s else 0.0


@dataclass
class Part:
    should_verify: int = 0
    verified: int = 0
    wrongly_verified: list[str] = field(default_factory=list)
    matched: int = 0
    extracted: int = 0
    expected: int = 0
    tampered: int = 0
    tampered_verified: list[str] = field(default_factory=list)
    not_measured: list[str] = field(default_factory=list)
    incremental_edits: int = 0
    incremental_flagged: int = 0
    names: int = 0
    names_flagged: int = 0
    names_verified: list[str] = field(default_factory=list)
    rewritten_names: int = 0
    rewritten_names_verified: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @property
    def verified_share(self) -> float:
        return self.verified / self.should_verify if self.should_verify else 1.0

    @property
    def f1(self) -> float:
        precision = self.matched / self.extracted if self.extracted else 0.0
        recall = self.matched / self.expected if self.expected else 0.0
        total = precision + recall
        return 2 * precision * recall / total if total else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "verified": self.verified,
            "should_verify": self.should_verify,
            "verified_share": round(self.verified_share, 3),
            "verified_but_should_not": self.wrongly_verified,
            "f1": round(self.f1, 4),
            "transactions": {
                "matched": self.matched,
                "extracted": self.extracted,
                "expected": self.expected,
            },
            "tampered_copies": self.tampered,
            "tampered_verified": self.tampered_verified,
            "edits_not_measured": self.not_measured,
            "incremental_edits_flagged": [self.incremental_flagged, self.incremental_edits],
            "names_changed_flagged": [self.names_flagged, self.names],
            "names_changed_verified": {
                "incremental": [len(self.names_verified), self.names],
                "rewritten": [len(self.rewritten_names_verified), self.rewritten_names],
            },
            "names_verified": self.names_verified + self.rewritten_names_verified,
            "not_verified": self.misses,
        }


@dataclass
class Report:
    busy_before: float | None
    parts: dict[str, Part] = field(default_factory=dict)
    pages: int = 0
    extract_s: float = 0.0
    raw_text_s: float = 0.0
    raw_text_cpu_s: float = 0.0
    job: JobRun | None = None
    finished: str = ""

    @property
    def pages_per_s(self) -> float:
        """Through the job when it ran, else `extract_statement` alone."""
        if self.job is not None:
            return self.job.pages_per_cpu_s
        return self.extract_pages_per_s

    @property
    def extract_pages_per_s(self) -> float:
        return self.pages / self.extract_s if self.extract_s else 0.0

    @property
    def raw_pages_per_s(self) -> float:
        return self.pages / self.raw_text_s if self.raw_text_s else 0.0

    @property
    def raw_pages_per_cpu_s(self) -> float:
        """The floor per core, as the job's figure is: CPU seconds, not the wall clock (on a
        shared machine the wall clock also counts waiting for a core)."""
        return self.pages / self.raw_text_cpu_s if self.raw_text_cpu_s else 0.0

    @property
    def verdicts(self) -> dict[str, bool]:
        held = self.parts.get(HELD_OUT, Part())
        return {
            "held_out_verified": held.verified_share >= GOAL_VERIFIED,
            "f1": all(p.f1 >= GOAL_F1 for p in self.parts.values() if p.expected),
            "tampered_verified": not any(p.tampered_verified for p in self.parts.values()),
            "pages_per_s": self.pages_per_s >= GOAL_PAGES_PER_S,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "finished": self.finished,
            "machine": machine(self.busy_before),
            "parts": {name: part.to_json() for name, part in self.parts.items()},
            "text_pages": self.pages,
            "pages_per_s_per_core": round(self.pages_per_s, 1),
            "through_the_job": None
            if self.job is None
            else {
                "files": self.job.files,
                "pages": self.job.pages,
                "worker_cpu_s": round(self.job.worker_cpu_s, 3),
                "wall_s": round(self.job.wall_s, 3),
                "pages_per_s_per_core": round(self.job.pages_per_cpu_s, 1),
                "pages_per_wall_s": round(self.job.pages_per_wall_s, 1),
                "statuses": self.job.statuses,
            },
            "extract_statement_pages_per_s": round(self.extract_pages_per_s, 1),
            "raw_text_pages_per_s": round(self.raw_pages_per_s, 1),
            "raw_text_pages_per_cpu_s": round(self.raw_pages_per_cpu_s, 1),
            "ratio_to_raw_per_core": round(self.pages_per_s / self.raw_pages_per_cpu_s, 3)
            if self.raw_pages_per_cpu_s
            else None,
            "pass": self.verdicts,
        }

    def table(self) -> str:
        passed = self.verdicts
        rows = [
            "statement reading on the outside corpus (extract_statement, one thread)",
            f"machine: {describe_busy(self.busy_before)} of the CPUs busy just before the run",
            "",
            f"{'part':<13}{'verified':>12}{'F1':>8}{'tampered verified':>20}",
        ]
        for name, part in self.parts.items():
            rows.append(
                f"{name:<13}{f'{part.verified}/{part.should_verify}':>12}{part.f1:>8.3f}"
                f"{f'{len(part.tampered_verified)}/{part.tampered}':>20}"
            )
            rows.append(
                f"  edits saved as incremental updates flagged by the document signals: "
                f"{part.incremental_flagged}/{part.incremental_edits}; changed names flagged: "
                f"{part.names_flagged}/{part.names}"
            )
            rows.append(
                f"  changed names verified: saved as incremental updates "
                f"{len(part.names_verified)}/{part.names}, rewritten whole "
                f"{len(part.rewritten_names_verified)}/{part.rewritten_names}"
            )
            for miss in part.misses:
                rows.append(f"  not verified: {miss}")
            for skipped in part.not_measured:
                rows.append(f"  edit not measured: {skipped}")
            for wrong in part.wrongly_verified:
                rows.append(f"  verified but should not be: {wrong}")
        rows += [
            "",
            f"held-out verified >= {GOAL_VERIFIED:.0%} {verdict(passed['held_out_verified'])}; "
            f"F1 >= {GOAL_F1} {verdict(passed['f1'])}; 0 tampered verified "
            f"{verdict(passed['tampered_verified'])}",
        ]
        raw = self.raw_pages_per_cpu_s
        if self.job is not None:
            job = self.job
            rows.append(
                f"through the job ({job.files} files in {-(-job.files // MAX_FILES)} batch(es), "
                f"{job.pages} text-layer pages, worker CPU {job.worker_cpu_s:.2f} s, wall "
                f"{job.wall_s:.2f} s; statements {job.statuses}): {job.pages_per_cpu_s:,.1f} "
                f"pages/s per core (goal >= {GOAL_PAGES_PER_S:.0f}) "
                f"{verdict(passed['pages_per_s'])}, {job.pages_per_wall_s:,.1f} pages/s wall"
            )
        else:
            rows.append(
                f"the job was not run (--no-job): extract_statement alone is judged "
                f"(goal >= {GOAL_PAGES_PER_S:.0f}) {verdict(passed['pages_per_s'])}"
            )
        rows.append(
            f"raw pypdfium2 text floor {raw:,.1f} pages per CPU second ({self.raw_pages_per_s:,.1f}"
            f" pages/s wall); extract_statement alone {self.extract_pages_per_s:,.1f} pages/s "
            f"wall ({self.pages} pages, one thread); judged figure / raw floor per core: "
            f"{self.pages_per_s / raw if raw else 0:.3f}"
        )
        return "\n".join(rows)


def _raw_text_seconds(item: CorpusStatement) -> tuple[float, float]:
    """Wall and CPU seconds to open the file and read every page's text."""
    started, cpu = time.perf_counter(), time.process_time()
    document = pdfium.PdfDocument(str(item.path), password=item.password)
    for index in range(len(document)):
        page = document[index]
        textpage = page.get_textpage()
        textpage.get_text_range()
        textpage.close()
        page.close()
    document.close()
    return time.perf_counter() - started, time.process_time() - cpu


def _has_text(data: bytes, password: str | None) -> tuple[bool, int]:
    document = pdfium.PdfDocument(data, password=password)
    try:
        pages = len(document)
        chars = 0
        for index in range(pages):
            textpage = document[index].get_textpage()
            chars += textpage.count_chars()
            textpage.close()
        return chars > 0, pages
    finally:
        document.close()


def _rows(statement: ExtractedStatement) -> list[tuple[object, ...]]:
    return [(t.date, t.amount, t.balance) for t in statement.transactions]


def _measurable_edit(
    item: CorpusStatement,
    data: bytes,
    original: ExtractedStatement,
    edit: Edit,
    incremental: bool,
) -> EditedPdf | str:
    """The first edit (of up to `EDIT_TRIES` words) whose control reads as the original, or
    why there is none."""
    reason = "no word pdfium rewrites"
    for skip in range(EDIT_TRIES):
        edited = edit_pdf(
            data,
            item.password,
            edit,
            holder=original.meta.holder_name,
            incremental=incremental,
            skip=skip,
        )
        if edited is None:
            return reason
        control = extract_statement(edited.control, item.password, limits=LIMITS)
        if control.status is original.status and _rows(control) == _rows(original):
            return edited
        reason = f"pdfium writing the page again unchanged changes its reading ({skip + 1} tried)"
    return reason


def _tamper(
    item: CorpusStatement, data: bytes, original: ExtractedStatement, part: Part, name: str
) -> None:
    """Real edited copies of a verified statement, read again."""
    for edit in Edit:
        for incremental in (True, False):
            saved = "incremental" if incremental else "rewritten"
            found = _measurable_edit(item, data, original, edit, incremental)
            if isinstance(found, str):
                part.not_measured.append(f"{name} ({edit}, {saved}): {found}")
                continue
            edited = found
            again = extract_statement(edited.data, item.password, limits=LIMITS)
            flagged = again.signals.incremental_updates > original.signals.incremental_updates
            where = f"{name} ({edit} {edited.before} -> {edited.after}, p{edited.page}, {saved})"
            verified = again.status is StatementStatus.VERIFIED
            if edit is Edit.NAME and incremental:
                part.names += 1
                part.names_flagged += flagged
                if verified:
                    part.names_verified.append(where)
                continue
            if edit is Edit.NAME:
                part.rewritten_names += 1
                if verified:
                    part.rewritten_names_verified.append(where)
                continue
            part.tampered += 1
            if incremental:
                part.incremental_edits += 1
                part.incremental_flagged += flagged
            if verified:
                part.tampered_verified.append(where)


def _text_files() -> list[CorpusStatement]:
    """The statements the job reads: text layer, no password."""
    return [
        item
        for item in statements()
        if item.password is None and _has_text(item.path.read_bytes(), None)[0]
    ]


def _wait_idle(worker: Child) -> None:
    """Until the worker has started (imports, registration) and waits, using no CPU."""
    deadline = time.monotonic() + 120
    last = cpu_seconds(worker.process.pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        worker.check_running()
        now = cpu_seconds(worker.process.pid)
        if last is not None and now is not None and now - last < IDLE_CPU_S:
            return
        last = now
    raise BenchError(f"the worker did not settle within 120 s:\n{tail(worker.log)}")


def _upload(client: httpx.Client, token: str, files: list[tuple[str, bytes]]) -> str:
    files_form = [("files", (name, data, "application/pdf")) for name, data in files]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
    response = client.post(f"{API}/batches", files=files_form, headers=headers)
    expect(response.status_code, 202, response.content, "POST /batches")
    batch: str = response.json()["id"]
    return batch


def _wait_batches(
    client: httpx.Client, token: str, batches: list[str], worker: Child
) -> dict[str, int]:
    """Until every batch is final; how many of their statements ended in each status."""
    headers = {"Authorization": f"Bearer {token}"}
    statuses: dict[str, int] = {}
    pending = set(batches)
    started = time.perf_counter()
    while pending:
        if time.perf_counter() - started > JOB_TIMEOUT_S:
            raise BenchError(f"batches not done in {JOB_TIMEOUT_S:.0f} s:\n{tail(worker.log)}")
        worker.check_running()
        for batch in list(pending):
            state = client.get(f"{API}/batches/{batch}", headers=headers).json()
            if state["status"] in FINAL:
                pending.discard(batch)
                for statement in state["statements"]:
                    key = str(statement["status"])
                    statuses[key] = statuses.get(key, 0) + 1
        time.sleep(0.05)
    return statuses


def _through_the_job(items: list[CorpusStatement]) -> JobRun:
    run = JobRun(files=len(items))
    for item in items:
        run.pages += _has_text(item.path.read_bytes(), None)[1]
    password = secrets.token_urlsafe(16)
    with contextlib.ExitStack() as stack:
        data_dir: Path = stack.enter_context(scratch_dir())
        env = child_env(data_dir, JOB_SETTINGS)
        say(f"starting touchstone on {data_dir}")
        server = stack.enter_context(
            serving("touchstone", SERVE, env, data_dir, data_dir / "serve.log", READY_PATH)
        )
        server.wait_ready()
        create_org(
            env,
            data_dir,
            name="Bench Statements",
            slug="bench-statements",
            admin_email="admin@bench.example.com",
            password=password,
        )
        token = sign_in(server.port, "admin@bench.example.com", password, "bench-statements")
        command = [sys.executable, "-m", "touchstone.cli", "worker", "--no-migrate"]
        command += ["--queues", "documents,reports", "--concurrency", "1"]
        worker = stack.enter_context(
            supervised(Child("worker", command, env, data_dir, data_dir / "worker.log"))
        )
        _wait_idle(worker)
        client = stack.enter_context(
            httpx.Client(base_url=f"http://{HOST}:{server.port}", timeout=120)
        )
        say("warming the worker up on a generated statement (as a running worker is warm)")
        warm = generate_statement("ruled_uk", seed=1).pdf
        _wait_batches(client, token, [_upload(client, token, [("warm-up.pdf", warm)])], worker)
        _wait_idle(worker)
        say(f"uploading {len(items)} statements; the worker reads them")
        before = cpu_seconds(worker.process.pid)
        started = time.perf_counter()
        batches = [
            _upload(client, token, [(i.path.name, i.path.read_bytes()) for i in chunk])
            for chunk in (items[n : n + MAX_FILES] for n in range(0, len(items), MAX_FILES))
        ]
        run.statuses = _wait_batches(client, token, batches, worker)
        run.wall_s = time.perf_counter() - started
        after = cpu_seconds(worker.process.pid)
        if before is None or after is None:
            raise BenchError("the worker's CPU time cannot be read (/proc is missing)")
        run.worker_cpu_s = after - before
    return run


def run(job: bool = True) -> Report:
    if not available():
        raise BenchError("../shared/corpora/statements is missing (CI has ../shared beside it)")
    report = Report(busy_share())
    for item in statements():
        part = report.parts.setdefault(item.part, Part())
        data = item.path.read_bytes()
        text, pages = _has_text(data, item.password)
        if not text:
            continue  # scans are OCR's business, not this figure's
        wall, cpu = _raw_text_seconds(item)
        report.raw_text_s += wall
        report.raw_text_cpu_s += cpu
        started = time.perf_counter()
        statement = extract_statement(data, item.password, limits=LIMITS)
        report.extract_s += time.perf_counter() - started
        report.pages += pages
        truth = item.transactions
        if truth:
            matched, extracted, expected = f1_counts(statement, truth)
            part.matched += matched
            part.extracted += extracted
            part.expected += expected
        verified = statement.status is StatementStatus.VERIFIED
        name = f"{item.family}/{item.path.name}"
        if item.should_verify:
            part.should_verify += 1
            part.verified += verified
            if not verified:
                reason = statement.issues[0].message if statement.issues else statement.status
                part.misses.append(f"{name}: {reason}")
        elif verified and truth:
            part.wrongly_verified.append(name)
        if verified:
            _tamper(item, data, statement, part, name)
    for name in (DEVELOPMENT, HELD_OUT):
        report.parts.setdefault(name, Part())
    if job:
        report.job = _through_the_job(_text_files())
    report.finished = finished_at()
    return report


def main(argv: list[str] | None = None) -> int:
    job = "--no-job" not in (sys.argv[1:] if argv is None else argv)
    return run_main(lambda: run(job), RESULTS)


if __name__ == "__main__":
    sys.exit(main())
