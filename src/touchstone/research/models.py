"""Tables of the research module; every one is a tenant table with row-level security.

A source's passages are slices of the text extracted from it (`text == full[start:end]`),
so a citation's offsets can always be checked against the passage it names. Keyword search
runs on a stored `tsvector` of each passage (GIN index). Deleting a source cascades to its
passages; an analysis keeps its report, whose citations name the source ids it had.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.db import Base, IdMixin, TenantMixin, TimestampMixin

_TZ = DateTime(timezone=True)
TEXT_SEARCH_CONFIG = "english"
"""PostgreSQL's stemming for the passages' keyword index (the search query uses the same)."""


class Source(IdMixin, TenantMixin, TimestampMixin, Base):
    """A document an org can cite: an upload or pasted text, stored as sent."""

    __tablename__ = "research_sources"
    __table_args__ = (UniqueConstraint("org_id", "sha256"),)

    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))
    """pdf | html | markdown | text (pasted text is `text`)"""
    origin: Mapped[str] = mapped_column(String(20))
    """upload | pasted"""
    size_bytes: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    """queued | ready | failed"""
    passages: Mapped[int] = mapped_column(Integer, default=0)
    characters: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(80))
    job_id: Mapped[uuid.UUID | None]
    created_by: Mapped[uuid.UUID]
    finished_at: Mapped[datetime | None] = mapped_column(_TZ)


class Passage(IdMixin, TenantMixin, Base):
    """A slice of a source's extracted text with where it stands in the document."""

    __tablename__ = "research_passages"
    __table_args__ = (
        UniqueConstraint("source_id", "ordinal"),
        Index("ix_research_passages_search", "search", postgresql_using="gin"),
    )

    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("research_sources.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer)
    heading: Mapped[str | None] = mapped_column(String(300))
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    search: Mapped[Any] = mapped_column(
        TSVECTOR,
        Computed(f"to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, text)", persisted=True),
    )


class Analysis(IdMixin, TenantMixin, TimestampMixin, Base):
    """A question answered from the org's sources by checkpointed steps.

    `state` holds each finished step's output under its name; a rerun of the job starts at
    `step`, the first step without one, so a worker that died loses only the step it was in.
    """

    __tablename__ = "research_analyses"

    question: Mapped[str] = mapped_column(String(1000))
    source_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid()))
    max_sentences: Mapped[int] = mapped_column(Integer)
    engine: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    """queued | running | done | failed"""
    step: Mapped[str] = mapped_column(String(20))
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(String(80))
    job_id: Mapped[uuid.UUID | None]
    created_by: Mapped[uuid.UUID]
    finished_at: Mapped[datetime | None] = mapped_column(_TZ)
