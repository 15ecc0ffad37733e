"""AR content HTTP API: parse, authorize, call the service, shape the response.

GETs read through `core.reads`; writes take `SessionDep` (they check the project or the
content first). Mounted under /api/v1 by main.py.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Response, UploadFile, status

from touchstone.arcontent import qr, service
from touchstone.arcontent.schemas import (
    ContentCreate,
    ContentDetail,
    ContentOut,
    ContentQuery,
    ContentUpdate,
    ProjectCreate,
    ProjectOut,
    ProjectQuery,
    ProjectUpdate,
    Transition,
)
from touchstone.core.auth import Principal
from touchstone.core.deps import SessionDep, SettingsDep, rate_limit, require
from touchstone.core.idempotency import IdempotencyDep
from touchstone.core.jobs import JobRecord
from touchstone.core.jobs.router import JobOut
from touchstone.core.pagination import Page, PageDep, page_response
from touchstone.core.query_params import query_model
from touchstone.core.reads import TenantRead, tenant_read
from touchstone.core.routing import ApiRouter, upload_limit
from touchstone.core.storage import StorageDep

router = ApiRouter(tags=["arcontent"])

Reads = Annotated[TenantRead, Depends(tenant_read("arcontent:read"))]
Writer = Annotated[Principal, Depends(require("arcontent:write"))]
ProjectFilter = Annotated[ProjectQuery, Depends(query_model(ProjectQuery))]
ContentFilter = Annotated[ContentQuery, Depends(query_model(ContentQuery))]

MARKER_LIMIT = upload_limit(lambda settings: service.MAX_MARKER_BYTES + settings.max_body_bytes)
VIDEO_LIMIT = upload_limit(lambda settings: service.MAX_VIDEO_BYTES + settings.max_body_bytes)


@router.post("/arcontent/projects", response_model=ProjectOut, status_code=201)
async def create_project(
    body: ProjectCreate, session: SessionDep, principal: Writer, idempotency: IdempotencyDep
) -> ProjectOut:
    """Only an org of kind `company` holds AR projects (`403 ar_companies_only`)."""
    return idempotency.remember(await service.create_project(session, principal, body))


@router.get("/arcontent/projects", response_model=Page[ProjectOut])
async def list_projects(read: Reads, page: PageDep, query: ProjectFilter) -> Response:
    items, total = await service.list_projects(read, page, status=query.status)
    return page_response(items, total, page)


@router.get("/arcontent/projects/{project_id}", response_model=ProjectOut)
async def get_project(project_id: uuid.UUID, read: Reads) -> ProjectOut:
    return ProjectOut.model_validate(await service.read_project(read, project_id))


@router.patch("/arcontent/projects/{project_id}", response_model=ProjectOut)
async def update_project(
    project_id: uuid.UUID, body: ProjectUpdate, session: SessionDep, principal: Writer
) -> ProjectOut:
    """Rename or re-describe an active project."""
    return await service.update_project(session, principal, project_id, body)


@router.post("/arcontent/projects/{project_id}/archive", response_model=ProjectOut)
async def archive_project(
    project_id: uuid.UUID, session: SessionDep, principal: Writer
) -> ProjectOut:
    """The project and every content in it are archived; published contents go offline."""
    return await service.archive_project(session, principal, project_id)


@router.post(
    "/arcontent/projects/{project_id}/contents", response_model=ContentOut, status_code=201
)
async def create_content(
    project_id: uuid.UUID,
    body: ContentCreate,
    session: SessionDep,
    principal: Writer,
    idempotency: IdempotencyDep,
) -> ContentOut:
    """A draft; its marker and video are uploaded next."""
    made = await service.create_content(session, principal, project_id, body)
    return idempotency.remember(made)


@router.get("/arcontent/projects/{project_id}/contents", response_model=Page[ContentOut])
async def list_contents(
    project_id: uuid.UUID, read: Reads, page: PageDep, query: ContentFilter
) -> Response:
    items, total = await service.list_contents(read, page, project_id, status=query.status)
    return page_response(items, total, page)


@router.get("/arcontent/contents/{content_id}", response_model=ContentDetail)
async def get_content(
    content_id: uuid.UUID, read: Reads, storage: StorageDep, settings: SettingsDep
) -> ContentDetail:
    """With signed links to the marker, the upload and the renditions."""
    return await service.read_content(read, storage, settings, content_id)


@router.patch("/arcontent/contents/{content_id}", response_model=ContentOut)
async def update_content(
    content_id: uuid.UUID, body: ContentUpdate, session: SessionDep, principal: Writer
) -> ContentOut:
    """A draft's title or placement on the marker."""
    return await service.update_content(session, principal, content_id, body)


@router.put(
    "/arcontent/contents/{content_id}/marker",
    response_model=ContentOut,
    dependencies=[Depends(rate_limit("uploads"))],
)
@MARKER_LIMIT
async def put_marker(
    content_id: uuid.UUID,
    file: UploadFile,
    session: SessionDep,
    storage: StorageDep,
    principal: Writer,
) -> ContentOut:
    """A JPEG, PNG or WebP of at least 200 px a side and at most 25 megapixels. A marker too
    plain to track is refused (`422 ar_marker_rejected`) with the reason and its `quality`
    (score 0-100, keypoints, coverage, contrast)."""
    return await service.set_marker(session, storage, principal, content_id, file)


@router.put(
    "/arcontent/contents/{content_id}/video",
    response_model=JobOut,
    status_code=202,
    dependencies=[Depends(rate_limit("uploads"))],
)
@VIDEO_LIMIT
async def put_video(
    content_id: uuid.UUID,
    file: UploadFile,
    session: SessionDep,
    response: Response,
    storage: StorageDep,
    principal: Writer,
    idempotency: IdempotencyDep,
) -> JobOut:
    """MP4, QuickTime, WebM or Matroska, at most 120 s; processing starts at once (`202`
    with the job's URL; progress as `arcontent.processing_progress` events)."""
    record = await service.set_video(session, storage, principal, content_id, file)
    return _accepted(record, response, idempotency)


@router.post("/arcontent/contents/{content_id}/reprocess", response_model=JobOut, status_code=202)
async def reprocess(
    content_id: uuid.UUID,
    response: Response,
    session: SessionDep,
    principal: Writer,
    idempotency: IdempotencyDep,
) -> JobOut:
    """Process the video again (after a failure, or to pick up new rendition settings)."""
    record = await service.reprocess(session, principal, content_id)
    return _accepted(record, response, idempotency)


def _accepted(record: JobRecord, response: Response, idempotency: IdempotencyDep) -> JobOut:
    """`202` with the job's URL, remembered under an `Idempotency-Key` (a retried upload
    replays the same job instead of queueing a second)."""
    location = {"Location": f"/api/v1/jobs/{record.id}"}
    response.headers.update(location)
    return idempotency.remember(JobOut.model_validate(record), status.HTTP_202_ACCEPTED, location)


@router.post("/arcontent/contents/{content_id}/transitions", response_model=ContentOut)
async def transition(
    content_id: uuid.UUID, body: Transition, session: SessionDep, principal: Writer
) -> ContentOut:
    """draft -> in_review -> published -> archived; in_review -> draft sends it back,
    archived -> draft restores it. Publishing and taking a published content down need
    `arcontent:publish`; review and publication need a marker and a processed video."""
    return await service.transition(session, principal, content_id, body.to, body.comment)


QR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/svg+xml": {}}}
}


@router.get("/arcontent/contents/{content_id}/qr.png", responses=QR_RESPONSES)
async def qr_png(content_id: uuid.UUID, read: Reads, settings: SettingsDep) -> Response:
    """The public URL as a QR code (published contents only)."""
    url = await service.published_url(read, settings, content_id)
    return Response(qr.png(url), media_type="image/png")


@router.get("/arcontent/contents/{content_id}/qr.svg", responses=QR_RESPONSES)
async def qr_svg(content_id: uuid.UUID, read: Reads, settings: SettingsDep) -> Response:
    url = await service.published_url(read, settings, content_id)
    return Response(qr.svg(url), media_type="image/svg+xml")
