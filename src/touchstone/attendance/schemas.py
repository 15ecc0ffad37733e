"""Request and response bodies of the attendance API. Embeddings never leave the server."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from touchstone.core.schemas import Flag, InputModel, Name, NonBlank, OutputModel, PlainText

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]
Text500 = Annotated[PlainText, StringConstraints(min_length=1, max_length=500), NonBlank]
Box = list[int]
"""[left, top, right, bottom] in the photo as analysed (longest side at most 1024 px)."""


class GroupCreate(InputModel):
    name: Annotated[Name, StringConstraints(max_length=120)]
    description: Text500 | None = None


class GroupOut(OutputModel):
    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime


class PersonCreate(InputModel):
    code: Code
    full_name: Name
    contact: Annotated[PlainText, StringConstraints(max_length=200)] | None = None


class ImportedRow(InputModel):
    """One CSV row of a bulk import: a person, and optionally the name of an existing group."""

    code: Code
    full_name: Name
    contact: Annotated[PlainText, StringConstraints(max_length=200)] | None = None
    group: Annotated[PlainText, StringConstraints(max_length=120)] | None = None


class RefusedRow(OutputModel):
    line: int
    """The CSV line (the header is line 1)."""
    code: str | None
    reason: str


class ImportReport(OutputModel):
    created: int
    refused: list[RefusedRow]


class PersonUpdate(InputModel):
    full_name: Name | None = None
    contact: Annotated[PlainText, StringConstraints(max_length=200)] | None = None


class PersonOut(OutputModel):
    id: uuid.UUID
    code: str
    full_name: str
    contact: str | None
    group_ids: list[uuid.UUID]
    has_consent: bool
    faces: int
    created_at: datetime


class PersonDeleted(OutputModel):
    id: uuid.UUID
    faces_deleted: int
    photos_deleted: int
    """Stored enrolment photos removed with the embeddings (by the job below, once the
    deletion is committed)."""
    photo_removal_job_id: uuid.UUID | None
    """The job that removes the photos (`/api/v1/jobs/{id}`); None when there were none."""


class MembersAdd(InputModel):
    person_ids: list[uuid.UUID] = Field(min_length=1, max_length=500)


class ConsentCreate(InputModel):
    given_by: Name
    """The person, or the guardian of a minor."""
    purpose: Text500
    given_at: datetime | None = None
    """When it was given (default: now)."""


class ConsentOut(OutputModel):
    id: uuid.UUID
    person_id: uuid.UUID
    given_by: str
    given_at: datetime
    purpose: str
    recorded_by: uuid.UUID
    created_at: datetime


class FaceOut(OutputModel):
    id: uuid.UUID
    person_id: uuid.UUID
    engine: str
    quality: dict[str, Any]
    created_at: datetime


class RecognisedFace(OutputModel):
    box: Box
    person_id: uuid.UUID | None
    """None: unknown (no enrolled person is close enough, or two are nearly as close)."""
    code: str | None
    full_name: str | None
    distance: float | None
    runner_up: float | None
    """Distance to the nearest face of a different enrolled person."""
    confidence: float
    reason: str
    """matched | too_far | ambiguous | no_enrolled_faces"""
    doubtful: bool = False
    """Unknown but close: marking a session queues it for a teacher's review."""


class Recognition(OutputModel):
    faces: list[RecognisedFace]
    threshold: float
    margin: float


class RecognitionSettings(OutputModel):
    match_threshold: float
    match_margin: float
    is_default: bool


class RecognitionSettingsUpdate(InputModel):
    match_threshold: float = Field(ge=0.2, le=1.0)
    match_margin: float = Field(ge=0.0, le=0.5)


class OperatingPointOut(OutputModel):
    threshold: float
    genuine_attempts: int
    true_accepts: int
    false_rejects: int
    misidentified: int
    impostor_attempts: int
    false_accepts: int
    false_accept_rate: float
    false_reject_rate: float


class Calibration(OutputModel):
    faces: int
    people: int
    margin: float
    current_threshold: float
    points: list[OperatingPointOut]


class SessionCreate(InputModel):
    label: Name
    starts_at: datetime | None = None


class SessionOut(OutputModel):
    id: uuid.UUID
    group_id: uuid.UUID
    label: str
    starts_at: datetime
    created_at: datetime


class PersonBrief(OutputModel):
    id: uuid.UUID
    code: str
    full_name: str


class MarkOut(OutputModel):
    person_id: uuid.UUID
    code: str
    full_name: str
    source: str
    """photo | manual"""
    distance: float | None
    confidence: float | None
    box: Box | None
    reason: str | None
    created_at: datetime


class ManualMark(InputModel):
    """A teacher's override: mark someone present the camera missed, or take back a mark."""

    person_id: uuid.UUID
    present: Flag
    reason: Text500


class ReviewOut(OutputModel):
    id: uuid.UUID
    session_id: uuid.UUID
    candidate_id: uuid.UUID
    candidate_code: str
    candidate_name: str
    distance: float
    box: Box
    status: str
    """open | confirmed | corrected | rejected"""
    reason: str | None
    created_at: datetime


class ReviewDecision(InputModel):
    """Who the face is: the candidate (confirm), another member (correct), or null
    (nobody of the group: reject)."""

    person_id: uuid.UUID | None
    reason: Text500


class SessionDetail(SessionOut):
    present: list[MarkOut]
    absent: list[PersonBrief]


class PhotoMarking(OutputModel):
    session_id: uuid.UUID
    faces_detected: int
    marked: list[MarkOut]
    """Members recognised in this photo (already marked ones included, not marked twice)."""
    unknown_faces: list[RecognisedFace]
    not_in_group: list[RecognisedFace]
    """Enrolled people of the org recognised here who are not members of the group."""
    queued_for_review: list[ReviewOut]
    """Doubtful faces whose nearest enrolled person is a member: a teacher decides."""
    absent: list[PersonBrief]
    """Members not marked present in the session after this photo."""
    seconds: float
