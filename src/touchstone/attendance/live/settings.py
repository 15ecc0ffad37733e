"""The org's camera settings: how sure the camera must be before it marks someone."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.attendance.models import CameraSettings as CameraRow
from touchstone.attendance.schemas import CameraSettings, CameraSettingsUpdate
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.db import utcnow
from touchstone.core.reads import Statements, TenantRead, row_query

DEFAULT_FRAMES_REQUIRED = 3
DEFAULT_WINDOW_SECONDS = 10.0

CAMERA_SETTINGS = row_query(
    select(CameraRow.frames_required, CameraRow.window_seconds).where(
        CameraRow.org_id == bindparam("org_id")
    )
)


async def camera_settings(read: TenantRead) -> CameraSettings:
    def plan(principal: Principal) -> Statements:
        return [(CAMERA_SETTINGS.query, {"org_id": principal.org_id})]

    (rows,) = await read.fetch(plan)
    if not rows:
        return CameraSettings(
            frames_required=DEFAULT_FRAMES_REQUIRED,
            window_seconds=DEFAULT_WINDOW_SECONDS,
            is_default=True,
        )
    frames, window = rows[0]
    return CameraSettings(frames_required=frames, window_seconds=window, is_default=False)


async def update_camera_settings(
    session: AsyncSession, principal: Principal, data: CameraSettingsUpdate
) -> CameraSettings:
    row = await camera_row(session, principal.org_id)
    if row is None:
        row = CameraRow(org_id=principal.org_id)
        session.add(row)
    row.frames_required, row.window_seconds = data.frames_required, data.window_seconds
    row.updated_at = utcnow()
    await record_audit(
        session,
        principal,
        "attendance.camera_settings.updated",
        "attendance_settings",
        principal.org_id,
        data.model_dump(),
    )
    await session.flush()
    return CameraSettings(**data.model_dump(), is_default=False)


async def camera_row(session: AsyncSession, org_id: uuid.UUID) -> CameraRow | None:
    found: CameraRow | None = await session.scalar(
        select(CameraRow).where(CameraRow.org_id == org_id)
    )
    return found
