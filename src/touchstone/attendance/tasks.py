"""Jobs of the attendance module (they carry ids only): marking a session from a class
photo (`evidence.mark_session_photo`)."""

from __future__ import annotations

from touchstone.attendance.evidence import mark_session_photo

__all__ = ["mark_session_photo"]
