"""Queries of the AR content module, always filtered by org as well as by row-level
security; the reads compiled once at import (`core.reads`)."""

from __future__ import annotations

import uuid

from sqlalchemy import BindParameter, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.arcontent.models import Content, Project
from touchstone.arcontent.schemas import ContentOut, ProjectOut
from touchstone.core.reads import columns_for, item_query, row_query

_ORG: BindParameter[uuid.UUID] = bindparam("org_id")

PROJECT_COLUMNS = columns_for(ProjectOut, Project)
PROJECT = item_query(
    select(*PROJECT_COLUMNS).where(Project.org_id == _ORG, Project.id == bindparam("id")),
    ProjectOut,
)
PROJECT_EXISTS = row_query(
    select(Project.id).where(Project.org_id == _ORG, Project.id == bindparam("project_id"))
)
CONTENT_COLUMNS = columns_for(ContentOut, Content)
CONTENT_FILES = row_query(
    select(
        *CONTENT_COLUMNS,
        Content.marker_key,
        Content.marker_width,
        Content.marker_height,
        Content.marker_sha256,
        Content.video_key,
        Content.video_sha256,
        Content.renditions,
        Content.public_token,
    ).where(Content.org_id == _ORG, Content.id == bindparam("id"))
)
CONTENT_PUBLICATION = row_query(
    select(Content.status, Content.public_token).where(
        Content.org_id == _ORG, Content.id == bindparam("id")
    )
)
ORG_KIND = text("select kind from orgs where id = :org_id")


async def org_kind(session: AsyncSession, org_id: uuid.UUID) -> str | None:
    kind: str | None = await session.scalar(ORG_KIND, {"org_id": org_id})
    return kind


async def get_project(
    session: AsyncSession, org_id: uuid.UUID, project_id: uuid.UUID, *, lock: bool = False
) -> Project | None:
    query = select(Project).where(Project.org_id == org_id, Project.id == project_id)
    return await session.scalar(query.with_for_update() if lock else query)


async def get_content(
    session: AsyncSession, org_id: uuid.UUID, content_id: uuid.UUID, *, lock: bool = True
) -> Content | None:
    query = select(Content).where(Content.org_id == org_id, Content.id == content_id)
    return await session.scalar(query.with_for_update() if lock else query)
