"""Tables of the AR content module; both are tenant tables with row-level security.

A project groups a company's AR contents (a campaign, a catalogue). A content is one
marker image with one overlay video: its workflow `status` (draft -> in_review ->
published -> archived) and its `processing` state (the overlay's transcoding) are kept
apart, so a content can be reviewed while its video is still being processed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.db import Base, IdMixin, TenantMixin, TimestampMixin, utcnow

_TZ = DateTime(timezone=True)


class Project(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "ar_projects"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="active")
    """`active` or `archived` (an archived project takes no new content)."""
    created_by: Mapped[uuid.UUID] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(_TZ)


class Content(IdMixin, TenantMixin, TimestampMixin, Base):
    """One marker and its overlay video, with the files processing made from the video."""

    __tablename__ = "ar_contents"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ar_projects.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    processing: Mapped[str] = mapped_column(String(20), default="empty")
    """`empty` (no video yet), `queued`, `processing`, `ready` or `failed`."""
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    placement: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """The overlay's scale, offset and rotation on the marker; loop, autoplay, sound on tap."""
    marker_key: Mapped[str | None] = mapped_column(String(200))
    marker_sha256: Mapped[str | None] = mapped_column(String(64))
    marker_width: Mapped[int | None] = mapped_column(Integer)
    marker_height: Mapped[int | None] = mapped_column(Integer)
    marker_score: Mapped[float | None] = mapped_column(Float)
    marker_quality: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The score's parts (keypoints, grid coverage, contrast), as the upload measured them."""
    video_key: Mapped[str | None] = mapped_column(String(200))
    video_sha256: Mapped[str | None] = mapped_column(String(64))
    renditions: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """Keys and facts of the processed files: `main`, `small` (MP4) and `poster` (JPEG)."""
    job_id: Mapped[uuid.UUID | None] = mapped_column()
    public_token: Mapped[str | None] = mapped_column(String(40), unique=True)
    """The unguessable part of the public URL, given at the first publication."""
    published_at: Mapped[datetime | None] = mapped_column(_TZ)
    created_by: Mapped[uuid.UUID] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
