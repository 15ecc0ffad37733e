"""Research use cases: sources (uploads and pasted text), passages, keyword search, analyses.

Adding a source or starting an analysis stores the row and queues its job in the request's
transaction (202 and the job), as the other modules' uploads do; refused input changes
nothing. A source whose bytes the org already has is refused with `409 duplicate_source`
naming the existing source (`source_id`), so one document is never indexed twice. Every GET
reads through `core.reads`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import UploadFile
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.db import add_unique, utcnow
from touchstone.core.errors import Conflict, PayloadTooLarge
from touchstone.core.jobs import JobRecord, defer
from touchstone.core.pagination import Items, PageParams
from touchstone.core.reads import ItemQuery, TenantRead, read_item
from touchstone.core.storage import Storage, file_kind, sniff_content_type
from touchstone.core.storage.sniff import CSV, JSON, PDF, SNIFF_BYTES, TEXT
from touchstone.research import engine, extraction, pipeline, repository, tasks
from touchstone.research.exceptions import (
    AnalysisNotFound,
    DuplicateSource,
    ReportNotReady,
    SourceNotFound,
    UnsupportedSource,
)
from touchstone.research.models import Analysis, Source
from touchstone.research.schemas import AnalysisCreate, PastedSource, SearchQuery
from touchstone.statements.service import pdf_page_count

SOURCE_KIND = file_kind("research-source", permission="research:read")
MAX_SOURCE_BYTES = 25 * 1024 * 1024
MAX_PAGES = pipeline.MAX_PAGES
_TEXT_TYPES = frozenset({TEXT, CSV, JSON})


# --- sources ----------------------------------------------------------------------------------


async def read_upload(upload: UploadFile) -> bytes:
    """The file's bytes, refused (413) as soon as it is known to be too large."""
    if upload.size is not None and upload.size > MAX_SOURCE_BYTES:
        raise PayloadTooLarge(f"A source may be at most {MAX_SOURCE_BYTES} bytes")
    await upload.seek(0)
    data = await upload.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise PayloadTooLarge(f"A source may be at most {MAX_SOURCE_BYTES} bytes")
    return data


async def sniff(data: bytes, filename: str) -> tuple[str, int | None]:
    """The source's kind from its bytes (never the client's content type), and a PDF's
    pages (checked against the page limit now, so a refused file is never stored)."""
    content_type = sniff_content_type(data[:SNIFF_BYTES], complete=len(data) <= SNIFF_BYTES)
    if content_type == PDF:
        pages = await anyio.to_thread.run_sync(pdf_page_count, data, MAX_PAGES)
        return "pdf", pages
    text = extraction.decode_text(data) if content_type in _TEXT_TYPES else None
    if text is None or not text.strip():
        raise UnsupportedSource()
    return extraction.text_kind(text, filename), None


async def add_upload(
    session: AsyncSession,
    principal: Principal,
    storage: Storage,
    upload: UploadFile,
    title: str | None,
) -> tuple[Source, JobRecord]:
    data = await read_upload(upload)
    filename = upload.filename or "source"
    kind, pages = await sniff(data, filename)
    return await _add(
        session, principal, storage, data, kind, pages, title or filename[:300], "upload"
    )


async def add_pasted(
    session: AsyncSession, principal: Principal, storage: Storage, body: PastedSource
) -> tuple[Source, JobRecord]:
    data = body.text.encode()
    return await _add(session, principal, storage, data, "text", None, body.title, "pasted")


async def _add(
    session: AsyncSession,
    principal: Principal,
    storage: Storage,
    data: bytes,
    kind: str,
    pages: int | None,
    title: str,
    origin: str,
) -> tuple[Source, JobRecord]:
    sha256 = hashlib.sha256(data).hexdigest()
    existing = await repository.source_with_hash(session, principal.org_id, sha256)
    if existing is not None:
        raise DuplicateSource(
            f"Source {existing.id} has the same content", extra={"source_id": str(existing.id)}
        )
    stored = await storage.put(principal.org_id, _one(data), kind=SOURCE_KIND)
    source = Source(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        title=title,
        kind=kind,
        origin=origin,
        size_bytes=len(data),
        pages=pages,
        sha256=sha256,
        storage_key=stored.key,
        status="queued",
        passages=0,
        characters=0,
        created_by=principal.id,
        created_at=utcnow(),
    )
    try:
        await add_unique(session, source, "This source was added already")
    except Conflict:  # the same bytes sent twice at once: the other request's row won
        await storage.delete(principal.org_id, stored.key)
        raise DuplicateSource("A source with the same content was added meanwhile") from None
    record = await defer(session, principal, tasks.extract_source, source_id=str(source.id))
    source.job_id = record.id
    await record_audit(
        session,
        principal,
        "research.source.added",
        "research_source",
        source.id,
        {"kind": kind, "origin": origin, "sha256": sha256, "job_id": str(record.id)},
    )
    await session.flush()
    return source, record


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read_source(read: TenantRead, source_id: uuid.UUID) -> dict[str, Any]:
    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        return repository.SOURCE, {"org_id": principal.org_id, "id": source_id}

    return await read_item(read, plan, SourceNotFound())


async def list_sources(read: TenantRead, page: PageParams) -> tuple[Items, int]:
    return await repository.SOURCE_PAGES.read(read, page)


async def list_passages(
    read: TenantRead, source_id: uuid.UUID, page: PageParams
) -> tuple[Items, int]:
    """The source's passages in document order (404 for a source that is not the org's)."""
    await read_source(read, source_id)
    return await repository.PASSAGE_PAGES.read(read, page, {"source_id": source_id})


async def search(read: TenantRead, query: SearchQuery, page: PageParams) -> tuple[Items, int]:
    """The org's passages matching the words, best first (`ts_rank_cd`)."""
    return await repository.SEARCH_PAGES.read(
        read, page, {"q": query.q, "source_id": query.source_id}
    )


async def delete_source(
    session: AsyncSession, principal: Principal, keys: list[str], source_id: uuid.UUID
) -> None:
    """Delete the source and its passages; its file goes by core's removal job (`keys`)."""
    source = await repository.get_source(session, principal.org_id, source_id, for_update=True)
    if source is None:
        raise SourceNotFound()
    keys.append(source.storage_key)
    await session.delete(source)
    await record_audit(
        session,
        principal,
        "research.source.deleted",
        "research_source",
        source_id,
        {"sha256": source.sha256},
    )
    await session.flush()


# --- analyses ---------------------------------------------------------------------------------


async def create_analysis(
    session: AsyncSession, principal: Principal, body: AnalysisCreate
) -> tuple[Analysis, JobRecord]:
    """Queue the analysis; every named source must be the org's (404 otherwise)."""
    source_ids = None
    if body.source_ids is not None:
        source_ids = list(dict.fromkeys(body.source_ids))
        found = await repository.existing_source_ids(session, principal.org_id, source_ids)
        if missing := [s for s in source_ids if s not in found]:
            raise SourceNotFound(f"No such source: {', '.join(map(str, missing))}")
    analysis = Analysis(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        question=body.question,
        source_ids=source_ids,
        max_sentences=body.max_sentences,
        engine=engine.ENGINE,
        status="queued",
        step=engine.STEPS[0],
        state={},
        created_by=principal.id,
        created_at=utcnow(),
    )
    session.add(analysis)
    await session.flush()
    record = await defer(session, principal, tasks.run_analysis, analysis_id=str(analysis.id))
    analysis.job_id = record.id
    await record_audit(
        session,
        principal,
        "research.analysis.created",
        "research_analysis",
        analysis.id,
        {"job_id": str(record.id), "sources": None if source_ids is None else len(source_ids)},
    )
    await session.flush()
    return analysis, record


async def read_analysis(read: TenantRead, analysis_id: uuid.UUID) -> dict[str, Any]:
    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        return repository.ANALYSIS, {"org_id": principal.org_id, "id": analysis_id}

    return await read_item(read, plan, AnalysisNotFound())


async def list_analyses(read: TenantRead, page: PageParams) -> tuple[Items, int]:
    return await repository.ANALYSIS_PAGES.read(read, page)


async def read_report(read: TenantRead, analysis_id: uuid.UUID) -> dict[str, Any]:
    """The checked report (409 `report_not_ready` until the analysis is done)."""

    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        return repository.REPORT, {"org_id": principal.org_id, "id": analysis_id}

    row = await read_item(read, plan, AnalysisNotFound())
    if row["status"] != "done" or row["report"] is None:
        raise ReportNotReady(f"The analysis is {row['status']}")
    report: dict[str, Any] = {**row["report"], "analysis_id": analysis_id}
    return report


def report_markdown(report: dict[str, Any]) -> str:
    return engine.markdown(report)


def report_html(report: dict[str, Any]) -> str:
    return engine.html_document(report)
