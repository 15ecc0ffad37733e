"""The research jobs' work: extracting a source into passages, and an analysis's steps.

An analysis runs `engine.STEPS` in order, each in its own transaction that stores the
step's output in `analysis.state` and moves `analysis.step` on: a job that runs again (its
worker died, the database went away) starts at the step it was in, with the outputs of the
steps before it as they were stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.db import Database, utcnow
from touchstone.core.events import publish
from touchstone.core.storage import Storage
from touchstone.research import engine, extraction, repository
from touchstone.research.exceptions import AnalysisNotFound, EmptySource, SourceNotFound
from touchstone.research.models import Analysis
from touchstone.statements.service import pdf_page_texts

log = structlog.get_logger("touchstone.research")
MAX_PAGES = 500
Progress = Callable[[int, str], Awaitable[None]]


def extract(kind: str, data: bytes) -> extraction.Extracted:
    """The source's text and passages (CPU work: run it in a thread)."""
    if kind == "pdf":
        pages = pdf_page_texts(data, MAX_PAGES)
        sections = [
            extraction.Section(number, extraction.pdf_blocks(text))
            for number, text in enumerate(pages, start=1)
        ]
    else:
        text = extraction.decode_text(data)
        if text is None:
            raise EmptySource("The stored file is no longer UTF-8 text")
        sections = extraction.sections_of(kind, text)
    return extraction.build(sections)


def passage_rows(
    org_id: uuid.UUID, source_id: uuid.UUID, extracted: extraction.Extracted
) -> list[dict[str, Any]]:
    """The passages as rows of `research_passages`, for one bulk insert."""
    return [
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "source_id": source_id,
            "ordinal": p.ordinal,
            "page": p.page,
            "heading": p.heading,
            "char_start": p.char_start,
            "char_end": p.char_end,
            "text": p.text,
        }
        for p in extracted.passages
    ]


async def extract_source(
    database: Database, org_id: uuid.UUID, source_id: uuid.UUID, storage: Storage
) -> dict[str, Any]:
    async with database.transaction(org_id=org_id) as session:
        source = await repository.get_source(session, org_id, source_id)
        if source is None:
            raise SourceNotFound("The source was deleted before its text was read")
        if source.status == "ready":  # an earlier run committed it; its status went astray
            return {"source_id": str(source_id), "passages": source.passages}
        kind, key = source.kind, source.storage_key
    opened = await storage.open(org_id, key)
    data = b"".join([chunk async for chunk in opened.chunks])
    extracted = await anyio.to_thread.run_sync(extract, kind, data)
    if not extracted.passages:
        raise EmptySource()
    rows = passage_rows(org_id, source_id, extracted)
    async with database.transaction(org_id=org_id) as session:
        source = await repository.get_source(session, org_id, source_id, for_update=True)
        if source is None:
            raise SourceNotFound("The source was deleted before its text was read")
        await repository.replace_passages(session, org_id, source_id, rows)
        source.status, source.passages = "ready", len(rows)
        source.characters, source.finished_at = len(extracted.text), utcnow()
        await publish(
            session,
            org_id,
            "research.source_ready",
            aggregate=("research_source", source_id),
            data={"source_id": str(source_id), "passages": len(rows)},
        )
    log.info("research_source_extracted", passages=len(rows), characters=len(extracted.text))
    return {"source_id": str(source_id), "passages": len(rows)}


async def source_ended(
    session: AsyncSession, org_id: uuid.UUID, problem: dict[str, Any], *, source_id: str
) -> None:
    """The extraction ended without passages: the source says why."""
    source = await repository.get_source(session, org_id, uuid.UUID(source_id), for_update=True)
    if source is None or source.status == "ready":
        return
    source.status, source.error_code, source.finished_at = "failed", problem["code"], utcnow()
    await publish(
        session,
        org_id,
        "research.source_failed",
        aggregate=("research_source", source.id),
        data={"source_id": source_id, "code": problem["code"]},
    )


# --- analyses ---------------------------------------------------------------------------------


async def _step_output(session: AsyncSession, analysis: Analysis, step: str) -> dict[str, Any]:
    """Run one step on the outputs stored before it."""
    state, org_id = analysis.state, analysis.org_id
    if step == "plan":
        return engine.plan(analysis.question)
    if step == "retrieve":
        passages = await repository.retrieve(
            session,
            org_id,
            state["plan"]["query"],
            analysis.source_ids,
            engine.RETRIEVE_PASSAGES,
        )
        return {"passages": [{k: p[k] for k in ("id", "source_id", "rank")} for p in passages]}
    retrieved = [p["id"] for p in state["retrieve"]["passages"]]
    if step == "select":
        found = await repository.passages_by_id(session, org_id, retrieved)
        ranked = [found[p] for p in retrieved if p in found]
        terms = state["plan"]["terms"]
        return {"sentences": engine.select(terms, ranked, analysis.max_sentences)}
    if step == "write":
        chosen = state["select"]["sentences"]
        found = await repository.passages_by_id(session, org_id, [s["passage_id"] for s in chosen])
        return engine.write(
            analysis.question, [s for s in chosen if s["passage_id"] in found], found
        )
    draft = state["write"]
    cited = {c["passage_id"] for s in draft["sentences"] for c in s["citations"]}
    found = await repository.passages_by_id(session, org_id, sorted(cited))
    allowed = (
        {str(s) for s in analysis.source_ids}
        if analysis.source_ids is not None
        else set(await repository.org_source_ids(session, org_id))
    )
    titles = await repository.source_titles(session, org_id, sorted(allowed))
    return engine.check(draft, found, allowed, titles)


async def run_analysis(
    database: Database, org_id: uuid.UUID, analysis_id: uuid.UUID, progress: Progress
) -> dict[str, Any]:
    """Run the analysis's remaining steps, storing each one's output as it finishes."""
    while True:
        async with database.transaction(org_id=org_id) as session:
            analysis = await repository.get_analysis(session, org_id, analysis_id, for_update=True)
            if analysis is None:
                raise AnalysisNotFound("The analysis was deleted before it finished")
            step = analysis.step
            if step == "done":
                return _result(analysis)
            analysis.status = "running"
            output = await _step_output(session, analysis, step)
            analysis.state = {**analysis.state, step: output}
            index = engine.STEPS.index(step)
            following = engine.STEPS[index + 1] if index + 1 < len(engine.STEPS) else "done"
            analysis.step = following
            percent = (index + 1) * 100 // len(engine.STEPS)
            if following == "done":
                analysis.status, analysis.report = "done", output
                analysis.finished_at = utcnow()
            await publish(
                session,
                org_id,
                "research.analysis_done" if following == "done" else "research.analysis_progress",
                aggregate=("research_analysis", analysis_id),
                data={"analysis_id": str(analysis_id), "step": step, "progress": percent},
            )
        await progress(percent, f"{step} done")


def _result(analysis: Analysis) -> dict[str, Any]:
    report = analysis.report or {}
    return {
        "analysis_id": str(analysis.id),
        "sentences": len(report.get("sentences", [])),
        "checks": report.get("checks"),
    }


async def analysis_ended(
    session: AsyncSession, org_id: uuid.UUID, problem: dict[str, Any], *, analysis_id: str
) -> None:
    """The job ended before the report: the analysis says why, and keeps its finished steps."""
    analysis = await repository.get_analysis(
        session, org_id, uuid.UUID(analysis_id), for_update=True
    )
    if analysis is None or analysis.status == "done":
        return
    analysis.status, analysis.error_code, analysis.finished_at = "failed", problem["code"], utcnow()
    await publish(
        session,
        org_id,
        "research.analysis_failed",
        aggregate=("research_analysis", analysis.id),
        data={"analysis_id": analysis_id, "code": problem["code"]},
    )
