"""Typed failures of the research module, rendered as problem+json by the core handler."""

from __future__ import annotations

from touchstone.core.errors import AppError, NotFound


class SourceNotFound(NotFound):
    code, title = "research_source_not_found", "Source not found"


class AnalysisNotFound(NotFound):
    code, title = "research_analysis_not_found", "Analysis not found"


class DuplicateSource(AppError):
    """The org already has a source with these exact bytes: `source_id` names it."""

    status, code, title = 409, "duplicate_source", "This source was added already"


class UnsupportedSource(AppError):
    status, code, title = 415, "unsupported_source_type", "Not a PDF, HTML, Markdown or text file"


class EmptySource(AppError):
    status, code, title = 422, "empty_source", "No text could be read from the source"


class ReportNotReady(AppError):
    status, code, title = 409, "report_not_ready", "The analysis has not finished its report"
