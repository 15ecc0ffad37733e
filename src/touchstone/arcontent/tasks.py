"""Jobs of the AR content module (they carry ids only): processing an overlay video."""

from __future__ import annotations

from touchstone.arcontent.processing import process_video

__all__ = ["process_video"]
