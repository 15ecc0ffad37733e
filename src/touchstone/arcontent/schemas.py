"""Request and response models of the AR content module."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StringConstraints

from touchstone.core.schemas import InputModel, Name, OutputModel, PlainText

ProjectName = Annotated[Name, StringConstraints(max_length=120)]
Text500 = Annotated[PlainText, StringConstraints(max_length=500)]
ContentStatus = Literal["draft", "in_review", "published", "archived"]


class ProjectCreate(InputModel):
    name: ProjectName
    description: Text500 | None = None


class ProjectUpdate(InputModel):
    """Rename or re-describe; a field left out is left as it is."""

    name: ProjectName | None = None
    description: Text500 | None = None


class ProjectOut(OutputModel):
    id: uuid.UUID
    name: str
    description: str | None
    status: str
    """`active` or `archived`."""
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class ProjectQuery(InputModel):
    status: Literal["active", "archived"] | None = None


class Placement(InputModel):
    """Where the overlay sits on the marker, in marker widths from its centre, and how the
    video behaves (the viewer reads these; phones start video muted, hence sound on tap)."""

    scale: float = Field(1.0, ge=0.1, le=10, allow_inf_nan=False)
    offset_x: float = Field(0.0, ge=-2, le=2, allow_inf_nan=False)
    offset_y: float = Field(0.0, ge=-2, le=2, allow_inf_nan=False)
    rotation: float = Field(0.0, ge=-180, le=180, allow_inf_nan=False)
    """Degrees, clockwise, in the marker's plane."""
    loop: StrictBool = True
    autoplay: StrictBool = True
    sound_on_tap: StrictBool = True


DEFAULT_PLACEMENT = Placement().model_dump()


class ContentCreate(InputModel):
    title: Name
    placement: Placement | None = None


class ContentUpdate(InputModel):
    """A draft's title or placement (a field left out is left as it is)."""

    title: Name | None = None
    placement: Placement | None = None


class ContentQuery(InputModel):
    status: ContentStatus | None = None


class ContentOut(OutputModel):
    id: uuid.UUID
    project_id: uuid.UUID
    title: str
    status: str
    """draft -> in_review -> published -> archived."""
    processing: str
    """The overlay video: `empty`, `queued`, `processing`, `ready` or `failed`."""
    failure_reason: str | None
    placement: dict[str, Any]
    marker_score: float | None
    marker_quality: dict[str, Any] | None
    job_id: uuid.UUID | None
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime


class FileLink(OutputModel):
    url: str
    """A short-lived signed link."""
    facts: dict[str, Any]


class ContentDetail(ContentOut):
    marker: FileLink | None
    video: FileLink | None
    """The upload as it came."""
    renditions: dict[str, FileLink]
    """`main` and `small` (H.264/AAC MP4, faststart) and `poster` (JPEG), once processed."""
    public_url: str | None
    """Where a published content is viewed (its QR code's address)."""


class Transition(InputModel):
    to: ContentStatus
    comment: Annotated[Text500, StringConstraints(min_length=0)] | None = None
