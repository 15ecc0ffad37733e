"""Tables of the attendance module; every one is a tenant table with row-level security.

Face embeddings live in PostgreSQL (pgvector) beside the people they belong to, under the
same tenant policy, so a nearest-neighbour search can never see another org's faces.
Deleting a person cascades to their memberships, consents, faces and marks.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Time,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.db import Base, IdMixin, TenantMixin, TimestampMixin, utcnow

EMBEDDING_DIMENSION = 128
_TZ = DateTime(timezone=True)


class Group(IdMixin, TenantMixin, TimestampMixin, Base):
    """A class, section or team."""

    __tablename__ = "attendance_groups"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(String(500))
    timezone: Mapped[str | None] = mapped_column(String(60))
    """IANA zone of the group's timetable; None: the org's (`Settings.timezone`)."""
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    """The user who answers for the group (a form teacher, a shift lead): gets its daily summary."""


class Person(IdMixin, TenantMixin, TimestampMixin, Base):
    """A student or member, known by the org's own code (e.g. `SV001`)."""

    __tablename__ = "attendance_people"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    code: Mapped[str] = mapped_column(String(40))
    full_name: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str | None] = mapped_column(String(200))
    """A guardian's or the person's own phone or email, as the org records it."""


class Membership(TenantMixin, Base):
    __tablename__ = "attendance_memberships"

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_groups.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_people.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Consent(IdMixin, TenantMixin, TimestampMixin, Base):
    """Consent to store biometric data, recorded before any face is enrolled."""

    __tablename__ = "attendance_consents"

    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_people.id", ondelete="CASCADE"), index=True
    )
    given_by: Mapped[str] = mapped_column(String(200))
    """The person, or a guardian for a minor."""
    given_at: Mapped[datetime] = mapped_column(_TZ)
    purpose: Mapped[str] = mapped_column(String(500))
    recorded_by: Mapped[uuid.UUID]


class Face(IdMixin, TenantMixin, TimestampMixin, Base):
    """One enrolled photo of a person: its descriptor, its stored photo, its quality."""

    __tablename__ = "attendance_faces"
    __table_args__ = (
        Index(
            "ix_attendance_faces_embedding",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_l2_ops"},
        ),
    )

    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_people.id", ondelete="CASCADE"), index=True
    )
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIMENSION))
    engine: Mapped[str] = mapped_column(String(40))
    photo_key: Mapped[str] = mapped_column(String(200))
    photo_sha256: Mapped[str] = mapped_column(String(64))
    quality: Mapped[dict[str, Any]] = mapped_column(JSONB)
    enrolled_by: Mapped[uuid.UUID]


class Settings(IdMixin, TenantMixin, Base):
    """The org's recognition threshold and margin (defaults in `attendance.matching`)."""

    __tablename__ = "attendance_settings"
    __table_args__ = (UniqueConstraint("org_id"),)

    match_threshold: Mapped[float] = mapped_column(Float)
    match_margin: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow, server_default=func.now())
    timezone: Mapped[str] = mapped_column(String(60), default="UTC", server_default="UTC")
    """The org's IANA zone: timetables and daily summaries are in local time."""
    evidence_retention_days: Mapped[int | None] = mapped_column(Integer)
    """Class photos kept as evidence are removed this many days after they were taken;
    None keeps them."""


class Session(IdMixin, TenantMixin, TimestampMixin, Base):
    """One occasion a group's attendance is taken (a lecture, a day, a shift)."""

    __tablename__ = "attendance_sessions"
    __table_args__ = (UniqueConstraint("slot_id", "starts_at"),)

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_groups.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(_TZ)
    created_by: Mapped[uuid.UUID]
    ends_at: Mapped[datetime | None] = mapped_column(_TZ)
    late_after: Mapped[datetime | None] = mapped_column(_TZ)
    """A mark taken after this moment is `late`; None: nobody is late."""
    slot_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("attendance_timetable_slots.id", ondelete="SET NULL"), index=True
    )
    """The timetable slot it was generated from (one session per slot and start)."""


class Mark(IdMixin, TenantMixin, TimestampMixin, Base):
    """A person marked present in a session, with the evidence of how."""

    __tablename__ = "attendance_marks"
    __table_args__ = (UniqueConstraint("session_id", "person_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_sessions.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_people.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(20))
    """photo | manual"""
    distance: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    box: Mapped[list[int] | None] = mapped_column(JSONB)
    photo_key: Mapped[str | None] = mapped_column(String(200))
    marked_by: Mapped[uuid.UUID]
    reason: Mapped[str | None] = mapped_column(String(500))
    """Why a teacher marked by hand."""
    status: Mapped[str] = mapped_column(String(10), default="present", server_default="present")
    """present | late (marked after the session's `late_after`)"""
    liveness: Mapped[str | None] = mapped_column(String(20))
    """The liveness engine's verdict on a face-based mark (`not_assessed` by default);
    None for a teacher's own."""
    evidence_removed_at: Mapped[datetime | None] = mapped_column(_TZ)
    """When retention removed the class photo `photo_key` named (then None)."""


class Review(IdMixin, TenantMixin, TimestampMixin, Base):
    """A doubtful face of a class photo, waiting for a teacher to confirm or correct."""

    __tablename__ = "attendance_reviews"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_sessions.id", ondelete="CASCADE"), index=True
    )
    candidate_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_people.id", ondelete="CASCADE"), index=True
    )
    distance: Mapped[float] = mapped_column(Float)
    box: Mapped[list[int]] = mapped_column(JSONB)
    photo_key: Mapped[str | None] = mapped_column(String(200))
    """None once retention removed the class photo (`evidence_removed_at`)."""
    status: Mapped[str] = mapped_column(String(20))
    """open | confirmed | corrected | rejected"""
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None] = mapped_column(_TZ)
    reason: Mapped[str | None] = mapped_column(String(500))
    evidence_removed_at: Mapped[datetime | None] = mapped_column(_TZ)


class CameraSettings(IdMixin, TenantMixin, Base):
    """How sure the live camera must be before it marks someone: recognised in
    `frames_required` frames within `window_seconds` (defaults in `attendance.live.settings`)."""

    __tablename__ = "attendance_camera_settings"
    __table_args__ = (UniqueConstraint("org_id"),)

    frames_required: Mapped[int] = mapped_column(Integer)
    window_seconds: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow, server_default=func.now())


class Evidence(IdMixin, TenantMixin, TimestampMixin, Base):
    """A class photo a session was marked from: the original, and once its job ran, the
    annotated copy (boxes, names or "unknown", doubtful faces marked)."""

    __tablename__ = "attendance_evidence"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_sessions.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20))
    """queued | done | failed"""
    photo_key: Mapped[str] = mapped_column(String(200))
    photo_sha256: Mapped[str] = mapped_column(String(64))
    annotated_key: Mapped[str | None] = mapped_column(String(200))
    job_id: Mapped[uuid.UUID | None]
    faces: Mapped[int | None] = mapped_column(Integer)
    marked: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(80))
    created_by: Mapped[uuid.UUID]
    finished_at: Mapped[datetime | None] = mapped_column(_TZ)


class TimetableSlot(IdMixin, TenantMixin, TimestampMixin, Base):
    """A weekly slot of a group's timetable: sessions are generated from it."""

    __tablename__ = "attendance_timetable_slots"
    __table_args__ = (UniqueConstraint("group_id", "weekday", "starts_at"),)

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_groups.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int] = mapped_column(SmallInteger)
    """ISO weekday: 1 Monday … 7 Sunday."""
    starts_at: Mapped[time] = mapped_column(Time)
    ends_at: Mapped[time] = mapped_column(Time)
    late_after_minutes: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200))


class DailySummary(IdMixin, TenantMixin, TimestampMixin, Base):
    """A group's day summarised to its owner: one row per group and local day, so the
    periodic job never sends the same day twice."""

    __tablename__ = "attendance_daily_summaries"
    __table_args__ = (UniqueConstraint("group_id", "day"),)

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("attendance_groups.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[date] = mapped_column(Date)
    owner_id: Mapped[uuid.UUID]
    email_id: Mapped[uuid.UUID | None]
    sessions: Mapped[int] = mapped_column(Integer)
    present: Mapped[int] = mapped_column(Integer)
    late: Mapped[int] = mapped_column(Integer)
    absent: Mapped[int] = mapped_column(Integer)
