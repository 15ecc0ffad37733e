"""Request and response bodies of the attendance API. Embeddings never leave the server."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from touchstone.core.schemas import (
    Count,
    Flag,
    InputModel,
    Name,
    NonBlank,
    OutputModel,
    PlainText,
)

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
    timezone: str | None
    """The timetable's zone; None: the org's."""
    owner_id: uuid.UUID | None
    """The user who gets the group's daily summary."""


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
    """The CSV line or the worksheet row (the header is 1)."""
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
    liveness: str = "not_assessed"
    """The liveness engine's verdict; the default engine makes no anti-spoofing claim."""


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
    late_after_minutes: Count | None = Field(default=None, ge=0, le=600)
    """Marks taken later than this after the start are `late` (None: nobody is late)."""


class SessionOut(OutputModel):
    id: uuid.UUID
    group_id: uuid.UUID
    label: str
    starts_at: datetime
    created_at: datetime
    ends_at: datetime | None
    late_after: datetime | None
    """Marks taken after this are `late`."""
    slot_id: uuid.UUID | None
    """The timetable slot it was generated from."""


class PersonBrief(OutputModel):
    id: uuid.UUID
    code: str
    full_name: str


class MarkOut(OutputModel):
    person_id: uuid.UUID
    code: str
    full_name: str
    source: str
    """photo | camera | review | manual"""
    distance: float | None
    confidence: float | None
    box: Box | None
    reason: str | None
    created_at: datetime
    status: str
    """present | late (marked after the session's cut-off)"""
    liveness: str | None = None
    """`not_assessed` on face-based marks unless a liveness engine is configured; None on
    a teacher's own."""


class ManualMark(InputModel):
    """A teacher's override: mark someone present the camera missed, or take back a mark."""

    person_id: uuid.UUID
    present: Flag
    reason: Text500
    status: Literal["present", "late"] | None = None
    """For a present mark: None decides by the time it is taken and the session's cut-off."""


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


# --- live camera, photo evidence --------------------------------------------------------------


class CameraSettings(OutputModel):
    frames_required: int
    """Frames a person must be recognised in, within `window_seconds`, to be marked."""
    window_seconds: float
    is_default: bool


class CameraSettingsUpdate(InputModel):
    frames_required: Count = Field(ge=1, le=30)
    window_seconds: float = Field(ge=1.0, le=120.0)


class EvidenceOut(OutputModel):
    """A class photo a session was marked from; the links are short-lived signed URLs."""

    id: uuid.UUID
    session_id: uuid.UUID
    status: str
    """queued | done | failed"""
    faces: int | None
    marked: int | None
    error_code: str | None
    job_id: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None
    photo_url: str
    annotated_url: str | None
    """The photo with every face boxed: green with the code and name of a recognised person,
    red "unknown", amber "doubtful?" for a face queued for review."""


# --- timetables, group owners, org settings --------------------------------------------------


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_zone(name: str) -> str:
    if name not in _zones():
        raise ValueError("must be an IANA time zone name such as Europe/London")
    return name


TimeZoneName = Annotated[
    str, StringConstraints(min_length=1, max_length=60), AfterValidator(_known_zone)
]


class GroupUpdate(InputModel):
    description: Text500 | None = None
    timezone: TimeZoneName | None = None
    """The timetable's zone (null: the org's)."""
    owner_id: uuid.UUID | None = None
    """A user of the org who gets the group's daily summary (null: nobody)."""


class OrgSettings(OutputModel):
    timezone: str
    evidence_retention_days: int | None
    """Class photos kept as evidence are removed after this many days (null: kept)."""


class OrgSettingsUpdate(InputModel):
    timezone: TimeZoneName | None = None
    evidence_retention_days: Count | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _zone_not_null(self) -> OrgSettingsUpdate:
        if "timezone" in self.model_fields_set and self.timezone is None:
            raise ValueError("timezone cannot be null")
        return self


def _wall_clock(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a wall-clock time without offset: the zone is the group's or org's")
    return value


WallClock = Annotated[time, AfterValidator(_wall_clock)]


class SlotIn(InputModel):
    weekday: Count = Field(ge=1, le=7)
    """ISO weekday: 1 Monday … 7 Sunday."""
    starts_at: WallClock
    ends_at: WallClock
    late_after_minutes: Count = Field(default=10, ge=0, le=600)
    label: Annotated[Name, StringConstraints(max_length=120)] | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> SlotIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at (on the same day)")
        return self


class TimetableIn(InputModel):
    slots: list[SlotIn] = Field(max_length=40)

    @model_validator(mode="after")
    def _one_slot_per_start(self) -> TimetableIn:
        starts = [(slot.weekday, slot.starts_at) for slot in self.slots]
        if len(set(starts)) != len(starts):
            raise ValueError("two slots start on the same weekday at the same time")
        return self


class SlotOut(OutputModel):
    id: uuid.UUID
    weekday: int
    starts_at: time
    ends_at: time
    late_after_minutes: int
    label: str


class TimetableOut(OutputModel):
    group_id: uuid.UUID
    timezone: str
    timezone_source: Literal["group", "org"]
    slots: list[SlotOut]


MAX_RANGE_DAYS = 366


class DateRange(InputModel):
    date_from: date
    date_to: date

    @model_validator(mode="after")
    def _bounded(self) -> DateRange:
        if self.date_to < self.date_from:
            raise ValueError("date_to is before date_from")
        if self.date_to - self.date_from >= timedelta(days=MAX_RANGE_DAYS):
            raise ValueError(f"at most {MAX_RANGE_DAYS} days")
        return self


class SessionGeneration(DateRange):
    """Local dates (the timetable's zone), both included."""


class GeneratedSessions(OutputModel):
    created: int
    existing: int
    """Sessions of the range that were generated before (left as they are)."""
    sessions: list[SessionOut]
    """The ones created now."""


# --- statistics -----------------------------------------------------------------------------

DEFAULT_RANGE_DAYS = 30


class RangeQuery(BaseModel):
    """A range of local dates (each session's day in its group's zone), both included;
    by default the 30 days up to today (UTC). Sessions still to start are not counted."""

    date_from: date | None = None
    date_to: date | None = None

    @model_validator(mode="after")
    def _bounded(self) -> RangeQuery:
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ValueError("date_to is before date_from")
        span = (self.date_to - self.date_from).days if self.date_from and self.date_to else 0
        if span >= MAX_RANGE_DAYS:
            raise ValueError(f"at most {MAX_RANGE_DAYS} days")
        return self

    def span(self, today: date) -> tuple[date, date]:
        date_to = self.date_to or (
            max(self.date_from, min(today, self.date_from + timedelta(days=MAX_RANGE_DAYS - 1)))
            if self.date_from
            else today
        )
        date_from = self.date_from or date_to - timedelta(days=DEFAULT_RANGE_DAYS - 1)
        return date_from, date_to


class StatisticsQuery(RangeQuery):
    group_id: uuid.UUID | None = None
    """Only this group's sessions (and, for people, its members)."""


class AbsenteeQuery(StatisticsQuery):
    below: float = Field(0.8, gt=0, le=1)
    """Attendance rate under which a person is a chronic absentee."""
    min_sessions: int = Field(1, ge=1, le=10_000)
    """Only people expected at this many sessions at least (one absence is not a pattern)."""


class PeriodQuery(StatisticsQuery):
    period: Literal["day", "week", "month"] = "week"
    """Weeks start on Monday."""


class PersonStatistics(OutputModel):
    person_id: uuid.UUID
    code: str
    full_name: str
    sessions: int
    """Sessions of the person's groups held in the range."""
    attended: int
    """present + late"""
    late: int
    absences: int
    rate: float | None
    """attended / sessions (None without sessions)."""
    current_absence_streak: int
    """Absences in a row up to the person's latest session in the range."""
    longest_absence_streak: int


class GroupStatistics(OutputModel):
    group_id: uuid.UUID
    name: str
    members: int
    sessions: int
    expected: int
    """Member-sessions: each member once per session."""
    present: int
    """On time."""
    late: int
    absent: int
    rate: float | None
    """(present + late) / expected."""


class SessionStatistics(OutputModel):
    session_id: uuid.UUID
    group_id: uuid.UUID
    label: str
    starts_at: datetime
    day: date
    expected: int
    present: int
    late: int
    absent: int
    rate: float | None


class PeriodStatistics(OutputModel):
    period_start: date
    sessions: int
    expected: int
    present: int
    late: int
    absent: int
    rate: float | None


class MonthExportQuery(BaseModel):
    month: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-11"])
    """The month as YYYY-MM (days local to the group's zone); by default this month (UTC)."""
    file_format: Literal["csv", "xlsx"] = Field("xlsx", alias="format")

    def first_day(self, today: date) -> date:
        if self.month is None:
            return today.replace(day=1)
        year, month = self.month.split("-")
        return date(int(year), int(month), 1)
