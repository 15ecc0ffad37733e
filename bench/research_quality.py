"""Research on outside documents: answers, citation precision, time to a report, ingest speed.

The documents are `../shared/corpora/docs` (made by others; see its MANIFEST), never copied
here; the questions and the facts their answers must contain are `research_questions.json`,
in a development and a held-out part. The run is in process on a scratch embedded
PostgreSQL, migrated as deployed: each document goes through the module's own extraction
(`pipeline.extract`) and passage insert, and each question through the whole analysis
(`pipeline.run_analysis`: plan, retrieve, select, write, check, each step stored), without
HTTP or the job queue. Every question is asked over all the documents at once.

- answer rate: reports containing every expected fact (case-insensitive), and reports whose
  first sentence alone does (a report has up to 8 sentences);
- citation precision: citations whose passage, read back from the database, holds their
  sentence at the cited offsets (goal >= 0.95);
- time to a finished report: wall time of the analysis's steps, median and worst;
- ingest: PDF pages per CPU-second of this process (one core) through the module's
  extraction, against pdfium's raw text layer (the floor) in the same run.

    python -m bench.research_quality
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import (
    RESULTS_DIR,
    ROOT,
    BenchError,
    busy_share,
    child_env,
    database_urls,
    describe_busy,
    finished_at,
    machine,
    run_main,
    say,
    scratch_dir,
    verdict,
)
from touchstone.core.config import Settings
from touchstone.core.db import Database, utcnow
from touchstone.research import engine, pipeline, repository
from touchstone.research.models import Analysis, Passage, Source
from touchstone.statements.service import pdf_page_texts

DOCS = ROOT.parent / "shared" / "corpora" / "docs"
QUESTIONS = ROOT / "bench" / "research_questions.json"
PRECISION_GOAL = 0.95
REPEATS = 3
"""Each PDF is read this many times for the ingest figures (the smallest CPU time counts)."""
MAX_SENTENCES = 8


@dataclass
class Part:
    asked: int = 0
    answered: int = 0
    lead: int = 0
    """Reports whose first sentence alone holds every fact."""
    citations: int = 0
    held: int = 0
    seconds: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.held / self.citations if self.citations else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "asked": self.asked,
            "answered": self.answered,
            "answer_rate": round(self.answered / max(self.asked, 1), 3),
            "first_sentence_rate": round(self.lead / max(self.asked, 1), 3),
            "citations": self.citations,
            "citation_precision": round(self.precision, 4),
            "report_seconds_median": round(statistics.median(self.seconds), 4),
            "report_seconds_max": round(max(self.seconds), 4),
            "missed": self.misses,
        }


@dataclass
class Report:
    busy_before: float | None
    parts: dict[str, Part] = field(default_factory=dict)
    pdf_pages: int = 0
    extract_cpu_s: float = 0.0
    floor_cpu_s: float = 0.0
    passages: int = 0
    insert_s: float = 0.0

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            f"citation precision ({name}) >= {PRECISION_GOAL}": part.precision >= PRECISION_GOAL
            for name, part in self.parts.items()
        }

    def table(self) -> str:
        lines = [f"machine: {describe_busy(self.busy_before)}"]
        for name, part in self.parts.items():
            figures = part.to_json()
            lines.append(
                f"{name:12} answers {part.answered}/{part.asked}"
                f" (in the first sentence {part.lead})"
                f"  citation precision {part.precision:.3f} ({part.held}/{part.citations})"
                f"  report {figures['report_seconds_median']} s median,"
                f" {figures['report_seconds_max']} s worst"
            )
            lines += [f"   missed: {miss}" for miss in part.misses]
        lines.append(
            f"ingest: {self.pdf_pages} PDF pages, {self._rate(self.extract_cpu_s):.0f} pages per"
            f" CPU-second through extraction, {self._rate(self.floor_cpu_s):.0f} for the raw"
            f" text layer (floor); {self.passages} passages inserted in {self.insert_s:.2f} s"
        )
        lines += [f"{verdict(ok)} {goal}" for goal, ok in self.verdicts.items()]
        return "\n".join(lines)

    def _rate(self, seconds: float) -> float:
        return self.pdf_pages / seconds if seconds else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "benchmark": "research_quality",
            "finished_at": finished_at(),
            "machine": machine(self.busy_before),
            "parts": {name: part.to_json() for name, part in self.parts.items()},
            "ingest": {
                "pdf_pages": self.pdf_pages,
                "pages_per_cpu_second": round(self._rate(self.extract_cpu_s), 1),
                "raw_text_pages_per_cpu_second": round(self._rate(self.floor_cpu_s), 1),
                "passages": self.passages,
                "passages_per_second_inserted": round(self.passages / self.insert_s, 1)
                if self.insert_s
                else None,
            },
            "verdicts": self.verdicts,
        }


def _cpu(function: Any, *arguments: Any) -> tuple[float, Any]:
    """The smallest CPU time of `REPEATS` calls (this process only), and the last result."""
    best, result = float("inf"), None
    for _ in range(REPEATS):
        started = time.process_time()
        result = function(*arguments)
        best = min(best, time.process_time() - started)
    return best, result


def _kind(path: Path) -> str:
    return {".pdf": "pdf", ".html": "html", ".md": "markdown"}.get(path.suffix, "text")


async def _ingest(
    report: Report, database: Database, org_id: uuid.UUID, documents: dict[str, str]
) -> None:
    for name, relative in documents.items():
        path = DOCS / relative
        data, kind = path.read_bytes(), _kind(path)
        if kind == "pdf":
            floor, pages = _cpu(pdf_page_texts, data, pipeline.MAX_PAGES)
            spent, extracted = _cpu(pipeline.extract, kind, data)
            report.pdf_pages += len(pages)
            report.floor_cpu_s += floor
            report.extract_cpu_s += spent
        else:
            extracted = pipeline.extract(kind, data)
        source_id = uuid.uuid4()
        rows = pipeline.passage_rows(org_id, source_id, extracted)
        started = time.perf_counter()
        async with database.transaction(org_id=org_id) as session:
            session.add(
                Source(
                    id=source_id,
                    org_id=org_id,
                    title=name,
                    kind=kind,
                    origin="upload",
                    size_bytes=len(data),
                    sha256=uuid.uuid4().hex,
                    storage_key="-",
                    status="ready",
                    passages=len(rows),
                    characters=len(extracted.text),
                    created_by=org_id,
                )
            )
            await session.flush()
            await repository.replace_passages(session, org_id, source_id, rows)
        report.insert_s += time.perf_counter() - started
        report.passages += len(rows)
        say(f"{name}: {len(rows)} passages")


async def _ask(database: Database, org_id: uuid.UUID, question: str) -> tuple[float, Any]:
    analysis_id = uuid.uuid4()
    async with database.transaction(org_id=org_id) as session:
        session.add(
            Analysis(
                id=analysis_id,
                org_id=org_id,
                question=question,
                source_ids=None,
                max_sentences=MAX_SENTENCES,
                engine=engine.ENGINE,
                status="queued",
                step=engine.STEPS[0],
                state={},
                created_by=org_id,
                created_at=utcnow(),
            )
        )

    async def progress(percent: int, message: str) -> None:
        return None

    started = time.perf_counter()
    await pipeline.run_analysis(database, org_id, analysis_id, progress)
    seconds = time.perf_counter() - started
    async with database.transaction(org_id=org_id) as session:
        stored = await session.scalar(select(Analysis.report).where(Analysis.id == analysis_id))
    return seconds, stored


async def _held(database: Database, org_id: uuid.UUID, report: dict[str, Any]) -> tuple[int, int]:
    """Citations, and those whose passage (read back) holds their sentence at the offsets."""
    total = held = 0
    async with database.transaction(org_id=org_id) as session:
        for sentence in report["sentences"]:
            for citation in sentence["citations"]:
                total += 1
                text = await session.scalar(
                    select(Passage.text).where(Passage.id == uuid.UUID(citation["passage_id"]))
                )
                held += (
                    text is not None
                    and text[citation["start"] : citation["end"]] == sentence["text"]
                )
    return total, held


async def _measure(report: Report, settings: Settings, runtime_url: str) -> None:
    questions = json.loads(QUESTIONS.read_text())
    database = Database(runtime_url, settings)
    org_id = uuid.uuid4()
    try:
        await _ingest(report, database, org_id, questions["documents"])
        for part_name in ("development", "held_out"):
            part = report.parts.setdefault(part_name, Part())
            for item in questions[part_name]:
                seconds, answer = await _ask(database, org_id, item["question"])
                sentences = [s["text"].lower() for s in answer["sentences"]]
                text = " ".join(sentences)
                part.asked += 1
                first = sentences[0] if sentences else ""
                part.lead += all(fact.lower() in first for fact in item["facts"])
                if all(fact.lower() in text for fact in item["facts"]):
                    part.answered += 1
                else:
                    part.misses.append(item["question"])
                total, held = await _held(database, org_id, answer)
                part.citations += total
                part.held += held
                part.seconds.append(seconds)
    finally:
        await database.dispose()


def run() -> Report:
    if not DOCS.is_dir():
        raise BenchError(f"{DOCS} is missing: the shared corpora must sit beside the checkout")
    report = Report(busy_share())
    with scratch_dir() as data_dir, database_urls(child_env(data_dir)) as (settings, urls):
        asyncio.run(_measure(report, settings, urls.runtime))
    return report


def main() -> int:
    return run_main(run, RESULTS_DIR / "research_quality.json")


if __name__ == "__main__":
    raise SystemExit(main())
