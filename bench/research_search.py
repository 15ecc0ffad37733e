"""Keyword retrieval among 100,000 passages of one org, as the research module runs it.

The passages are generated: each joins six sentences drawn at random from the text the
module extracts from `../shared/corpora/docs` (so the words and their frequencies are real
ones, the passages are not). They are written to `research_passages` of one org under 100
sources, with the GIN index built as the migration declares it. The queries are those the
analyses send for the questions of `research_questions.json`: `retrieve` (any of the
question's words, the 40 best: `repository.retrieve`, what an analysis's retrieve step
runs) and `search` (all of them, the 20 best, as `GET /research/search?q=` ranks), as the
runtime role under row-level security, timed from the client.

Goal: p95 < 200 ms for both. Run: `python -m bench.research_search` (`--passages N` for
another size: loading and indexing 100,000 takes several minutes on a busy 2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import func, literal_column, select

from bench.common import (
    RESULTS_DIR,
    busy_share,
    child_env,
    database_urls,
    describe_busy,
    finished_at,
    latency_summary,
    machine,
    run_main,
    say,
    scratch_dir,
    verdict,
)
from bench.research_quality import DOCS, QUESTIONS
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.research import engine, extraction, pipeline, repository
from touchstone.research.models import TEXT_SEARCH_CONFIG, Passage

SOURCES, SENTENCES_EACH = 100, 6
ROUNDS = 3
GOAL_P95_MS = 200.0
SEARCH_LIMIT = 20


@dataclass
class Report:
    busy_before: float | None
    passages: int
    insert_s: float = 0.0
    index_s: float = 0.0
    timings: dict[str, list[float]] = field(default_factory=dict)
    matches: dict[str, int] = field(default_factory=dict)

    def p95(self, name: str) -> float:
        return latency_summary(self.timings[name])["p95"]

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            f"{name} p95 < {GOAL_P95_MS:.0f} ms": self.p95(name) < GOAL_P95_MS
            for name in self.timings
        }

    def table(self) -> str:
        lines = [
            f"machine: {describe_busy(self.busy_before)}",
            f"{self.passages} generated passages loaded in {self.insert_s:.1f} s,"
            f" GIN index built in"
            f" {self.index_s:.1f} s",
        ]
        for name, samples in self.timings.items():
            summary = latency_summary(samples)
            lines.append(
                f"{name:9} p50 {summary['p50']:.1f} ms  p95 {summary['p95']:.1f} ms"
                f"  ({len(samples)} queries, median {self.matches[name]} passages matched)"
            )
        lines += [f"{verdict(ok)} {goal}" for goal, ok in self.verdicts.items()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "benchmark": "research_search",
            "finished_at": finished_at(),
            "machine": machine(self.busy_before),
            "passages": self.passages,
            "insert_s": round(self.insert_s, 2),
            "index_s": round(self.index_s, 2),
            "latency_ms": {name: latency_summary(s) for name, s in self.timings.items()},
            "verdicts": self.verdicts,
        }


def _sentences() -> list[str]:
    documents = json.loads(QUESTIONS.read_text())["documents"]
    pool = []
    for relative in documents.values():
        path = DOCS / relative
        kind = "pdf" if path.suffix == ".pdf" else "html"
        text = pipeline.extract(kind, path.read_bytes()).text
        pool += [text[a:b] for a, b in extraction.sentence_spans(text)]
    return [s for s in pool if len(s) > 20]


def _load(admin: psycopg.Connection[Any], org: uuid.UUID, pool: list[str], passages: int) -> None:
    rng = random.Random(7)
    sources = [uuid.uuid4() for _ in range(SOURCES)]
    with admin.cursor() as cursor:
        with cursor.copy(
            "COPY research_sources (id, org_id, title, kind, origin, size_bytes, sha256,"
            " storage_key, status, passages, characters, created_by) FROM STDIN"
        ) as copy:
            for n, source in enumerate(sources):
                copy.write_row(
                    (
                        source,
                        org,
                        f"generated {n}",
                        "text",
                        "upload",
                        0,
                        uuid.uuid4().hex,
                        "-",
                        "ready",
                        passages // SOURCES,
                        0,
                        org,
                    )
                )
        per_source = passages // SOURCES
        with cursor.copy(
            "COPY research_passages (id, org_id, source_id, ordinal, char_start, char_end, text)"
            " FROM STDIN"
        ) as copy:
            for index in range(passages):
                text = " ".join(rng.choice(pool) for _ in range(SENTENCES_EACH))
                source = sources[index // per_source]
                copy.write_row((uuid.uuid4(), org, source, index % per_source, 0, len(text), text))


async def _query(report: Report, settings: Settings, runtime_url: str, org: uuid.UUID) -> None:
    questions = json.loads(QUESTIONS.read_text())
    plans = [
        engine.plan(q["question"]) for part in ("development", "held_out") for q in questions[part]
    ]
    config = literal_column(f"'{TEXT_SEARCH_CONFIG}'::regconfig")
    database = Database(runtime_url, settings)
    report.timings = {"retrieve": [], "search": []}
    counts: dict[str, list[int]] = {"retrieve": [], "search": []}
    try:
        for _ in range(ROUNDS):
            for plan in plans:
                async with database.transaction(org_id=org) as session:
                    started = time.perf_counter()
                    found = await repository.retrieve(
                        session, org, plan["query"], None, engine.RETRIEVE_PASSAGES
                    )
                    report.timings["retrieve"].append((time.perf_counter() - started) * 1000)
                    counts["retrieve"].append(len(found))
                    tsquery = func.websearch_to_tsquery(config, " ".join(plan["terms"]))
                    statement = (
                        select(
                            Passage.id, func.ts_rank_cd(Passage.search, tsquery, 32).label("rank")
                        )
                        .where(Passage.org_id == org, Passage.search.op("@@")(tsquery))
                        .order_by(literal_column("rank").desc())
                        .limit(SEARCH_LIMIT)
                    )
                    started = time.perf_counter()
                    rows = (await session.execute(statement)).all()
                    report.timings["search"].append((time.perf_counter() - started) * 1000)
                    counts["search"].append(len(rows))
    finally:
        await database.dispose()
    report.matches = {name: sorted(c)[len(c) // 2] for name, c in counts.items()}


def run(passages: int) -> Report:
    report = Report(busy_share(), passages)
    org = uuid.uuid4()
    pool = _sentences()
    say(f"{len(pool)} sentences from the shared documents")
    with scratch_dir() as data_dir, database_urls(child_env(data_dir)) as (settings, urls):
        url = str(urls.admin).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("DROP INDEX ix_research_passages_search")
            started = time.perf_counter()
            _load(admin, org, pool, passages)
            report.insert_s = time.perf_counter() - started
            say("building the GIN index")
            started = time.perf_counter()
            admin.execute("SET maintenance_work_mem = '256MB'")
            admin.execute(
                "CREATE INDEX ix_research_passages_search ON research_passages USING gin (search)"
            )
            admin.execute("ANALYZE research_passages")
            report.index_s = time.perf_counter() - started
        asyncio.run(_query(report, settings, urls.runtime, org))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--passages", type=int, default=100_000)
    passages = parser.parse_args().passages
    return run_main(lambda: run(passages), RESULTS_DIR / "research_search.json")


if __name__ == "__main__":
    raise SystemExit(main())
