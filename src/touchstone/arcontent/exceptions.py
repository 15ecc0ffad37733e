"""Typed failures of the AR content module, rendered as problem+json by the core handler."""

from __future__ import annotations

from typing import Any

from touchstone.core.errors import AppError, NotFound


class ProjectNotFound(NotFound):
    code, title = "ar_project_not_found", "Project not found"


class ContentNotFound(NotFound):
    code, title = "ar_content_not_found", "AR content not found"


class CompaniesOnly(AppError):
    status, code, title = 403, "ar_companies_only", "AR projects belong to companies"


class ProjectArchived(AppError):
    status, code, title = 409, "ar_project_archived", "The project is archived"


class ContentLocked(AppError):
    status, code, title = 409, "ar_content_locked", "The content cannot change in this status"


class BadTransition(AppError):
    status, code, title = 409, "ar_bad_transition", "This status change is not allowed"


class NotReady(AppError):
    status, code, title = 409, "ar_not_ready", "The content is not ready to publish"


class MarkerRejected(AppError):
    """A marker too plain to track: the score and its parts come back with the reason."""

    status, code, title = 422, "ar_marker_rejected", "The marker cannot be tracked reliably"

    def __init__(self, detail: str, quality: dict[str, Any]) -> None:
        super().__init__(detail, extra={"quality": quality})


class BadMedia(AppError):
    status, code, title = 422, "ar_bad_media", "The file cannot be used"
