"""Research HTTP API: parse, authorize, call the service, shape the response.

GETs read through `core.reads`; adding a source and starting an analysis store a row and
queue its job in one transaction (`SessionDep`), answering `202` with the job's `Location`.
Mounted under /api/v1 by main.py.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, File, Form, Response, UploadFile, status
from fastapi.responses import HTMLResponse, PlainTextResponse

from touchstone.core.auth import Principal
from touchstone.core.deps import SessionDep, rate_limit, require
from touchstone.core.idempotency import IdempotencyDep
from touchstone.core.pagination import Page, PageDep, page_response
from touchstone.core.query_params import query_model
from touchstone.core.reads import TenantRead, tenant_read
from touchstone.core.routing import ApiRouter, upload_limit
from touchstone.core.schemas import PlainText
from touchstone.core.storage import StorageDep
from touchstone.core.storage.removal import delete_after_commit
from touchstone.research import service
from touchstone.research.schemas import (
    AnalysisCreate,
    AnalysisOut,
    PassageOut,
    PastedSource,
    ReportOut,
    SearchHit,
    SearchQuery,
    SourceOut,
)

router = ApiRouter(tags=["research"])

Reads = Annotated[TenantRead, Depends(tenant_read("research:read"))]
Writer = Annotated[Principal, Depends(require("research:write"))]
ACCEPTED = status.HTTP_202_ACCEPTED
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
"""The report page runs nothing and loads nothing: its text comes from the sources."""


def _accepted(response: Response, job_id: uuid.UUID) -> dict[str, str]:
    location = {"Location": f"/api/v1/jobs/{job_id}"}
    response.headers.update(location)
    return location


@router.post(
    "/research/sources",
    response_model=SourceOut,
    status_code=ACCEPTED,
    dependencies=[Depends(rate_limit("uploads"))],
)
@upload_limit(lambda settings: service.MAX_SOURCE_BYTES + settings.max_body_bytes)
async def upload_source(
    response: Response,
    session: SessionDep,
    storage: StorageDep,
    principal: Writer,
    idempotency: IdempotencyDep,
    file: Annotated[UploadFile, File(description="PDF, HTML, Markdown or plain text (UTF-8)")],
    title: Annotated[PlainText | None, Form(max_length=300)] = None,
) -> SourceOut:
    """Add a document; its type is sniffed from its bytes. `202` and the extraction job;
    `409 duplicate_source` (with `source_id`) when the org has these bytes already."""
    source, record = await service.add_upload(
        session, principal, storage, file, (title or "").strip() or None
    )
    location = _accepted(response, record.id)
    return idempotency.remember(SourceOut.model_validate(source), ACCEPTED, location)


@router.post("/research/text-sources", response_model=SourceOut, status_code=ACCEPTED)
async def paste_source(
    body: PastedSource,
    response: Response,
    session: SessionDep,
    storage: StorageDep,
    principal: Writer,
    idempotency: IdempotencyDep,
) -> SourceOut:
    """Add pasted text as a source (as an upload of a plain-text file would be)."""
    source, record = await service.add_pasted(session, principal, storage, body)
    location = _accepted(response, record.id)
    return idempotency.remember(SourceOut.model_validate(source), ACCEPTED, location)


@router.get("/research/sources", response_model=Page[SourceOut])
async def list_sources(read: Reads, page: PageDep) -> Response:
    items, total = await service.list_sources(read, page)
    return page_response(items, total, page)


@router.get("/research/sources/{source_id}", response_model=SourceOut)
async def get_source(source_id: uuid.UUID, read: Reads) -> SourceOut:
    return SourceOut.model_validate(await service.read_source(read, source_id))


@router.delete("/research/sources/{source_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_source(source_id: uuid.UUID, session: SessionDep, principal: Writer) -> Response:
    """Delete the source, its passages and (by a job, after the commit) its file. Reports
    already written keep their sentences."""
    keys: list[str] = []
    await service.delete_source(session, principal, keys, source_id)
    await delete_after_commit(session, principal, keys)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/research/sources/{source_id}/passages", response_model=Page[PassageOut])
async def list_passages(source_id: uuid.UUID, read: Reads, page: PageDep) -> Response:
    """The source's passages in document order, with page, heading and character offsets."""
    items, total = await service.list_passages(read, source_id, page)
    return page_response(items, total, page)


@router.get("/research/search", response_model=Page[SearchHit])
async def search(
    read: Reads,
    page: PageDep,
    query: Annotated[SearchQuery, Depends(query_model(SearchQuery))],
) -> Response:
    """Keyword search over the org's passages, best match first (`sort=-rank`)."""
    items, total = await service.search(read, query, page)
    return page_response(items, total, page)


@router.post("/research/analyses", response_model=AnalysisOut, status_code=ACCEPTED)
async def create_analysis(
    body: AnalysisCreate,
    response: Response,
    session: SessionDep,
    principal: Writer,
    idempotency: IdempotencyDep,
) -> AnalysisOut:
    """Answer a question from the org's sources (or those named) with the offline
    extractive engine: `202` and the job, whose steps are stored as they finish."""
    analysis, record = await service.create_analysis(session, principal, body)
    location = _accepted(response, record.id)
    return idempotency.remember(AnalysisOut.model_validate(analysis), ACCEPTED, location)


@router.get("/research/analyses", response_model=Page[AnalysisOut])
async def list_analyses(read: Reads, page: PageDep) -> Response:
    items, total = await service.list_analyses(read, page)
    return page_response(items, total, page)


@router.get("/research/analyses/{analysis_id}", response_model=AnalysisOut)
async def get_analysis(analysis_id: uuid.UUID, read: Reads) -> AnalysisOut:
    return AnalysisOut.model_validate(await service.read_analysis(read, analysis_id))


@router.get("/research/analyses/{analysis_id}/report", response_model=ReportOut)
async def get_report(analysis_id: uuid.UUID, read: Reads) -> ReportOut:
    """Sentences with checked citations, and the sources they cite (`409` until done)."""
    return ReportOut.model_validate(await service.read_report(read, analysis_id))


@router.get(
    "/research/analyses/{analysis_id}/report.md",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}},
)
async def get_report_markdown(analysis_id: uuid.UUID, read: Reads) -> Response:
    report = await service.read_report(read, analysis_id)
    return Response(service.report_markdown(report), media_type="text/markdown; charset=utf-8")


@router.get("/research/analyses/{analysis_id}/report.html", response_class=HTMLResponse)
async def get_report_html(analysis_id: uuid.UUID, read: Reads) -> Response:
    report = await service.read_report(read, analysis_id)
    return HTMLResponse(service.report_html(report), headers={"Content-Security-Policy": HTML_CSP})
