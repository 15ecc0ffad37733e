"""AR content use cases: projects, contents, their marker and video, publishing.

Reads go through `core.reads` (one round trip); writes take the request's `AsyncSession`,
flush, and record an audit event for each change. Only companies (orgs of kind
`company`) create projects; everything else follows from a project, so no other org can
hold AR content. Other modules may import this file only.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import anyio
from fastapi import UploadFile
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.arcontent import quality, repository
from touchstone.arcontent.exceptions import (
    BadMedia,
    BadTransition,
    CompaniesOnly,
    ContentLocked,
    ContentNotFound,
    NotReady,
    ProjectArchived,
    ProjectNotFound,
)
from touchstone.arcontent.models import Content, Project
from touchstone.arcontent.processing import process_video
from touchstone.arcontent.schemas import (
    DEFAULT_PLACEMENT,
    ContentCreate,
    ContentDetail,
    ContentOut,
    ContentUpdate,
    FileLink,
    ProjectCreate,
    ProjectOut,
    ProjectUpdate,
)
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import utcnow
from touchstone.core.errors import Conflict, Forbidden, PayloadTooLarge
from touchstone.core.events import publish
from touchstone.core.jobs import JobRecord, defer
from touchstone.core.pagination import Items, PageParams, PageShape
from touchstone.core.reads import ItemQuery, Statements, TenantRead, read_item
from touchstone.core.storage import Storage, file_kind, sniff_content_type, store_upload
from touchstone.core.storage.removal import delete_after_commit
from touchstone.core.storage.sniff import JPEG, MATROSKA, MP4, PNG, QUICKTIME, WEBM, WEBP

MARKER_KIND = file_kind("ar-marker", permission="arcontent:read")
VIDEO_KIND = file_kind("ar-video", permission="arcontent:read")
MARKER_TYPES = frozenset({JPEG, PNG, WEBP})
VIDEO_TYPES = frozenset({MP4, QUICKTIME, WEBM, MATROSKA})
MAX_MARKER_BYTES = 10 * 1024 * 1024
MAX_VIDEO_BYTES = 200 * 1024 * 1024
VIEWER_PATH = "/ar"
"""Public URLs are `<PUBLIC_URL>/ar/<token>`."""

# --- projects ---------------------------------------------------------------------------------


async def create_project(
    session: AsyncSession, principal: Principal, data: ProjectCreate
) -> ProjectOut:
    if await repository.org_kind(session, principal.org_id) != "company":
        raise CompaniesOnly("Only an organization of kind `company` holds AR projects")
    now = utcnow()
    project = Project(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        name=data.name,
        description=data.description,
        status="active",
        created_by=principal.id,
        created_at=now,
        updated_at=now,
    )
    await _unique_name(session, principal.org_id, data.name)
    session.add(project)
    await record_audit(
        session,
        principal,
        "arcontent.project.created",
        "ar_project",
        project.id,
        {"name": data.name},
    )
    await session.flush()
    return ProjectOut.model_validate(project, from_attributes=True)


async def _unique_name(session: AsyncSession, org_id: uuid.UUID, name: str) -> None:
    taken = await session.scalar(
        select(Project.id).where(Project.org_id == org_id, Project.name == name)
    )
    if taken is not None:
        raise Conflict("A project with this name exists")


async def _project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, *, active: bool = True
) -> Project:
    project = await repository.get_project(session, principal.org_id, project_id, lock=True)
    if project is None:
        raise ProjectNotFound()
    if active and project.status != "active":
        raise ProjectArchived()
    return project


async def update_project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, data: ProjectUpdate
) -> ProjectOut:
    project = await _project(session, principal, project_id)
    changes: dict[str, Any] = {}
    if data.name is not None and data.name != project.name:
        await _unique_name(session, principal.org_id, data.name)
        changes["name"] = {"from": project.name, "to": data.name}
        project.name = data.name
    if "description" in data.model_fields_set and data.description != project.description:
        changes["description"] = {"from": project.description, "to": data.description}
        project.description = data.description
    if changes:
        project.updated_at = utcnow()
        await record_audit(
            session, principal, "arcontent.project.updated", "ar_project", project.id, changes
        )
        await session.flush()
    return ProjectOut.model_validate(project, from_attributes=True)


async def archive_project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID
) -> ProjectOut:
    """Archive the project and every content in it (published ones stop being public)."""
    project = await _project(session, principal, project_id)
    now = utcnow()
    project.status, project.archived_at, project.updated_at = "archived", now, now
    archived = await session.execute(
        update(Content)
        .where(
            Content.org_id == principal.org_id,
            Content.project_id == project_id,
            Content.status != "archived",
        )
        .values(status="archived", updated_at=now)
        .returning(Content.id)
    )
    contents = [str(row.id) for row in archived]
    await record_audit(
        session,
        principal,
        "arcontent.project.archived",
        "ar_project",
        project.id,
        {"contents_archived": contents},
    )
    await session.flush()
    return ProjectOut.model_validate(project, from_attributes=True)


async def read_project(read: TenantRead, project_id: uuid.UUID) -> dict[str, Any]:
    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        return repository.PROJECT, {"org_id": principal.org_id, "id": project_id}

    return await read_item(read, plan, ProjectNotFound())


_PROJECT_PAGES = PageShape(
    select(*repository.PROJECT_COLUMNS).where(Project.org_id == bindparam("org_id")),
    {"status": lambda status: Project.status == status},
    {"name": Project.name, "created_at": Project.created_at, "updated_at": Project.updated_at},
    "name",
    Project.id,
    item=ProjectOut,
)


async def list_projects(
    read: TenantRead, page: PageParams, *, status: str | None
) -> tuple[Items, int]:
    return await _PROJECT_PAGES.read(read, page, {"status": status})


# --- contents ---------------------------------------------------------------------------------


async def create_content(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, data: ContentCreate
) -> ContentOut:
    await _project(session, principal, project_id)
    now = utcnow()
    content = Content(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        project_id=project_id,
        title=data.title,
        placement=data.placement.model_dump() if data.placement else dict(DEFAULT_PLACEMENT),
        status="draft",
        processing="empty",
        created_by=principal.id,
        created_at=now,
        updated_at=now,
    )
    session.add(content)
    await record_audit(
        session,
        principal,
        "arcontent.content.created",
        "ar_content",
        content.id,
        {"project_id": str(project_id), "title": data.title},
    )
    await session.flush()
    return ContentOut.model_validate(content, from_attributes=True)


async def update_content(
    session: AsyncSession, principal: Principal, content_id: uuid.UUID, data: ContentUpdate
) -> ContentOut:
    content = await _draft(session, principal, content_id)
    changes: dict[str, Any] = {}
    if data.title is not None and data.title != content.title:
        changes["title"] = {"from": content.title, "to": data.title}
        content.title = data.title
    if data.placement is not None and data.placement.model_dump() != content.placement:
        changes["placement"] = {"from": content.placement, "to": data.placement.model_dump()}
        content.placement = data.placement.model_dump()
    if changes:
        content.updated_at = utcnow()
        await record_audit(
            session, principal, "arcontent.content.updated", "ar_content", content.id, changes
        )
        await session.flush()
    return ContentOut.model_validate(content, from_attributes=True)


_CONTENT_PAGES = PageShape(
    select(*repository.CONTENT_COLUMNS).where(Content.org_id == bindparam("org_id")),
    {
        "project_id": lambda project: Content.project_id == project,
        "status": lambda status: Content.status == status,
    },
    {"title": Content.title, "created_at": Content.created_at, "updated_at": Content.updated_at},
    "created_at",
    Content.id,
    item=ContentOut,
)


async def list_contents(
    read: TenantRead, page: PageParams, project_id: uuid.UUID, *, status: str | None
) -> tuple[Items, int]:
    """The project's contents; another tenant's project is a 404, not an empty page."""

    def exists(principal: Principal) -> Statements:
        return [
            (
                repository.PROJECT_EXISTS.query,
                {"org_id": principal.org_id, "project_id": project_id},
            )
        ]

    (found,) = await read.fetch(exists)
    if not found:
        raise ProjectNotFound()
    return await _CONTENT_PAGES.read(read, page, {"project_id": project_id, "status": status})


async def _content(session: AsyncSession, principal: Principal, content_id: uuid.UUID) -> Content:
    content = await repository.get_content(session, principal.org_id, content_id)
    if content is None:
        raise ContentNotFound()
    return content


async def _draft(session: AsyncSession, principal: Principal, content_id: uuid.UUID) -> Content:
    """A content that may still change: a draft in an active project."""
    content = await _content(session, principal, content_id)
    if content.status != "draft":
        raise ContentLocked(
            f"A content in status {content.status} cannot change; archive it "
            "and restore it as a draft first"
        )
    await _project(session, principal, content.project_id)
    return content


def public_url(settings: Settings, token: str) -> str:
    return f"{settings.link_base}{VIEWER_PATH}/{token}"


async def read_content(
    read: TenantRead, storage: Storage, settings: Settings, content_id: uuid.UUID
) -> ContentDetail:
    """The content with short-lived signed links to its files (one round trip)."""

    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "id": content_id}
        return [(repository.CONTENT_FILES.query, values)]

    (rows,) = await read.fetch(plan)
    if not rows or read.principal is None:
        raise ContentNotFound()
    row = repository.CONTENT_FILES.items(rows)[0]
    org_id = read.principal.org_id
    marker = None
    if row["marker_key"]:
        marker = FileLink(
            url=await storage.signed_url(org_id, row["marker_key"]),
            facts={
                "width": row["marker_width"],
                "height": row["marker_height"],
                "sha256": row["marker_sha256"],
            },
        )
    video = None
    if row["video_key"]:
        video = FileLink(
            url=await storage.signed_url(org_id, row["video_key"]),
            facts={"sha256": row["video_sha256"]},
        )
    renditions = {}
    for name, made in (row["renditions"] or {}).items():
        facts = {key: value for key, value in made.items() if key != "key"}
        renditions[name] = FileLink(url=await storage.signed_url(org_id, made["key"]), facts=facts)
    token = row["public_token"]
    fields = {name: row[name] for name in ContentOut.model_fields}
    return ContentDetail(
        **fields,
        marker=marker,
        video=video,
        renditions=renditions,
        public_url=public_url(settings, token) if token and row["status"] == "published" else None,
    )


async def _upload_bytes(upload: UploadFile, limit: int) -> bytes:
    await upload.seek(0)
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"The marker is larger than {limit} bytes")
    if not data:
        raise BadMedia("The marker file is empty")
    return data


async def _one(data: bytes) -> Any:
    yield data


async def set_marker(
    session: AsyncSession,
    storage: Storage,
    principal: Principal,
    content_id: uuid.UUID,
    upload: UploadFile,
) -> ContentOut:
    """Sniff, measure and store the marker; a marker too plain to track is refused with its
    score and changes nothing."""
    content = await _draft(session, principal, content_id)
    data = await _upload_bytes(upload, MAX_MARKER_BYTES)
    found = sniff_content_type(data[:8192], complete=len(data) <= 8192)
    if found not in MARKER_TYPES:
        raise BadMedia(f"A marker must be a JPEG, PNG or WebP image, not {found}")
    measured = await anyio.to_thread.run_sync(quality.measure, data)
    quality.check(measured)
    stored = await storage.put(
        principal.org_id, _one(data), kind=MARKER_KIND, allowed_types=MARKER_TYPES
    )
    old = content.marker_key
    content.marker_key, content.marker_sha256 = stored.key, stored.sha256
    content.marker_width, content.marker_height = measured.width, measured.height
    content.marker_score, content.marker_quality = measured.score, measured.as_dict()
    content.updated_at = utcnow()
    if old:
        await delete_after_commit(session, principal, [old])
    await record_audit(
        session,
        principal,
        "arcontent.content.marker_set",
        "ar_content",
        content.id,
        {"sha256": stored.sha256, "score": measured.score},
    )
    await session.flush()
    return ContentOut.model_validate(content, from_attributes=True)


async def set_video(
    session: AsyncSession,
    storage: Storage,
    principal: Principal,
    content_id: uuid.UUID,
    upload: UploadFile,
) -> JobRecord:
    """Store the overlay video (its type sniffed) and queue its processing."""
    content = await _draft(session, principal, content_id)
    stored = await store_upload(
        storage,
        principal.org_id,
        upload,
        kind=VIDEO_KIND,
        max_bytes=MAX_VIDEO_BYTES,
        allowed_types=VIDEO_TYPES,
    )
    old = [content.video_key] if content.video_key else []
    old += [made["key"] for made in (content.renditions or {}).values()]
    content.video_key, content.video_sha256 = stored.key, stored.sha256
    content.renditions = None
    if old:
        await delete_after_commit(session, principal, old)
    await record_audit(
        session,
        principal,
        "arcontent.content.video_set",
        "ar_content",
        content.id,
        {"sha256": stored.sha256, "bytes": stored.size},
    )
    return await _queue_processing(session, principal, content)


async def reprocess(
    session: AsyncSession, principal: Principal, content_id: uuid.UUID
) -> JobRecord:
    content = await _draft(session, principal, content_id)
    if content.video_key is None:
        raise NotReady("The content has no video to process")
    if content.processing in ("queued", "processing"):
        raise Conflict("The video is being processed already")
    await record_audit(
        session, principal, "arcontent.content.reprocess", "ar_content", content.id, {}
    )
    return await _queue_processing(session, principal, content)


async def _queue_processing(
    session: AsyncSession, principal: Principal, content: Content
) -> JobRecord:
    content.processing, content.failure_reason = "queued", None
    content.updated_at = utcnow()
    await session.flush()
    record = await defer(
        session, principal, process_video, content_id=str(content.id), video_key=content.video_key
    )
    content.job_id = record.id
    await publish(
        session,
        principal.org_id,
        "arcontent.processing_queued",
        aggregate=("ar_content", content.id),
        data={"content_id": str(content.id), "job_id": str(record.id)},
    )
    await session.flush()
    return record


# --- publishing -------------------------------------------------------------------------------

TRANSITIONS: dict[tuple[str, str], str] = {
    ("draft", "in_review"): "arcontent:write",
    ("in_review", "draft"): "arcontent:write",
    ("in_review", "published"): "arcontent:publish",
    ("published", "archived"): "arcontent:publish",
    ("draft", "archived"): "arcontent:write",
    ("in_review", "archived"): "arcontent:write",
    ("archived", "draft"): "arcontent:write",
}
"""Which status may follow which, and the permission the step needs (publishing, and
taking a published content down, are for who may publish)."""


async def transition(
    session: AsyncSession,
    principal: Principal,
    content_id: uuid.UUID,
    to: str,
    comment: str | None,
) -> ContentOut:
    content = await _content(session, principal, content_id)
    step = (content.status, to)
    needed = TRANSITIONS.get(step)
    if needed is None:
        raise BadTransition(f"A content in status {content.status} cannot go to {to}")
    if needed not in principal.permissions:
        raise Forbidden(f"Going from {content.status} to {to} needs {needed}")
    if to != "archived":
        await _project(session, principal, content.project_id)
    if to in ("in_review", "published") and (
        content.marker_key is None or content.processing != "ready"
    ):
        raise NotReady("A content needs a marker and a processed video (processing: ready)")
    now = utcnow()
    if to == "published":
        content.public_token = content.public_token or secrets.token_urlsafe(18)
        content.published_at = now
    content.status, content.updated_at = to, now
    await record_audit(
        session,
        principal,
        f"arcontent.content.{to}",
        "ar_content",
        content.id,
        {"from": step[0], "to": to, "comment": comment},
    )
    await publish(
        session,
        principal.org_id,
        "arcontent.status_changed",
        aggregate=("ar_content", content.id),
        data={"content_id": str(content.id), "from": step[0], "to": to},
    )
    await session.flush()
    return ContentOut.model_validate(content, from_attributes=True)


async def published_url(read: TenantRead, settings: Settings, content_id: uuid.UUID) -> str:
    """The public URL of a published content (what its QR code holds)."""

    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "id": content_id}
        return [(repository.CONTENT_PUBLICATION.query, values)]

    (rows,) = await read.fetch(plan)
    if not rows:
        raise ContentNotFound()
    status, token = rows[0]
    if status != "published" or token is None:
        raise NotReady("Only a published content has a public URL and a QR code")
    return public_url(settings, token)
