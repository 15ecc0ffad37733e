"""Request and response models of the research module."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from touchstone.core.schemas import Count, InputModel, NonBlank, OutputModel, PlainText

MAX_PASTED_CHARS = 300_000
"""Pasted text travels in a JSON body (capped at `MAX_BODY_BYTES`); longer text is an upload."""

Title = Annotated[
    str, StringConstraints(min_length=1, max_length=300, strip_whitespace=True), NonBlank
]
Question = Annotated[
    str, StringConstraints(min_length=3, max_length=1000, strip_whitespace=True), NonBlank
]


class PastedSource(InputModel):
    title: Title
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASTED_CHARS), NonBlank]


class SourceOut(OutputModel):
    id: uuid.UUID
    title: str
    kind: str
    """pdf | html | markdown | text"""
    origin: str
    """upload | pasted"""
    size_bytes: int
    pages: int | None
    sha256: str
    status: str
    """queued | ready | failed"""
    passages: int
    characters: int
    error_code: str | None
    job_id: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None


class PassageOut(OutputModel):
    """A slice of the source's extracted text: `text == full_text[char_start:char_end]`."""

    id: uuid.UUID
    source_id: uuid.UUID
    ordinal: int
    page: int | None
    heading: str | None
    char_start: int
    char_end: int
    text: str


class SearchHit(OutputModel):
    id: uuid.UUID
    source_id: uuid.UUID
    source_title: str
    ordinal: int
    page: int | None
    heading: str | None
    char_start: int
    char_end: int
    text: str
    rank: float


class SearchQuery(InputModel):
    q: Annotated[PlainText, StringConstraints(min_length=1, max_length=300)] = Field(
        description="Words to look for (web-search syntax: quotes, `or`, `-word`)"
    )
    source_id: uuid.UUID | None = None


class AnalysisCreate(InputModel):
    question: Question
    source_ids: list[uuid.UUID] | None = Field(
        None, min_length=1, max_length=200, description="The sources to use; all when omitted"
    )
    max_sentences: Count = Field(8, ge=1, le=40)


class AnalysisOut(OutputModel):
    id: uuid.UUID
    question: str
    source_ids: list[uuid.UUID] | None
    max_sentences: int
    engine: str
    status: str
    """queued | running | done | failed"""
    step: str
    """The step running or next to run: plan, retrieve, select, write, check; done at the end"""
    error_code: str | None
    job_id: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None


class CitationOut(OutputModel):
    source_id: uuid.UUID
    passage_id: uuid.UUID
    start: int
    """Offsets of the sentence in the passage's text"""
    end: int
    char_start: int
    """Offsets of the sentence in the source's extracted text"""
    char_end: int
    page: int | None


class SentenceOut(OutputModel):
    text: str
    citations: list[CitationOut]


class CitedPassage(OutputModel):
    id: uuid.UUID
    ordinal: int
    page: int | None
    link: str
    """The passage alone, through the source's passages list"""


class ReportSourceOut(OutputModel):
    id: uuid.UUID
    title: str
    passages: list[CitedPassage]


class ReportChecks(OutputModel):
    citations: int
    held: int
    failed: int
    sentences_removed: int


class ReportOut(OutputModel):
    analysis_id: uuid.UUID
    question: str
    engine: str
    sentences: list[SentenceOut]
    sources: list[ReportSourceOut]
    checks: ReportChecks
