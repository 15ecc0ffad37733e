"""Typed failures of the attendance module, rendered as problem+json by the core handler."""

from __future__ import annotations

from touchstone.core.errors import AppError, NotFound


class GroupNotFound(NotFound):
    code, title = "attendance_group_not_found", "Group not found"


class PersonNotFound(NotFound):
    code, title = "attendance_person_not_found", "Person not found"


class SessionNotFound(NotFound):
    code, title = "attendance_session_not_found", "Session not found"


class FaceNotFound(NotFound):
    code, title = "attendance_face_not_found", "Enrolled face not found"


class NotAMember(AppError):
    status, code, title = 409, "not_a_member", "The person is not a member of the group"


class ReviewNotFound(NotFound):
    code, title = "attendance_review_not_found", "Review not found"


class ReviewDecided(AppError):
    status, code, title = 409, "review_decided", "The review was decided already"


class ConsentRequired(AppError):
    """No biometric data is stored for a person without recorded consent."""

    status, code, title = 409, "consent_required", "Consent is required before enrolment"


class InvalidPhoto(AppError):
    status, code, title = 422, "invalid_photo", "The photo is not a decodable JPEG or PNG"


class EnrolmentRefused(AppError):
    """A quality gate failed; `gate` names it (face_count, face_size, blur, pose, lighting)."""

    status, code, title = 422, "enrolment_refused", "The photo cannot be enrolled"

    def __init__(self, gate: str, detail: str, quality: dict[str, float] | None = None) -> None:
        super().__init__(detail, extra={"gate": gate, "quality": quality})


class PhotoTooLarge(InvalidPhoto):
    """Refused from the header alone, before any pixel is decoded."""


class InvalidFrame(AppError):
    """A camera frame that is not a decodable JPEG or PNG; the stream goes on."""

    status, code, title = 422, "invalid_frame", "The frame is not a decodable JPEG or PNG"


class FrameTooLarge(AppError):
    status, code, title = 413, "frame_too_large", "The frame is too large"


class InvalidFaceModel(AppError):
    """The configured face model cannot serve as an engine (said when it is loaded)."""

    status, code, title = 500, "invalid_face_model", "The face model cannot be used"


class UnknownLivenessEngine(AppError):
    """`LIVENESS_ENGINE` names no registered engine: a configuration error, said loudly."""

    status, code, title = 500, "unknown_liveness_engine", "The liveness engine is not known"
