"""Security headers every response carries, and the Content-Security-Policy of HTML pages.

Kept apart from the middleware so the last-resort 500 handler, which Starlette runs outside
every middleware, can send the same set.
"""

from __future__ import annotations

API_CSP = "default-src 'none'; frame-ancestors 'none'"
"""JSON, files and problems: nothing in them may load or frame anything."""
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""HTML that sets no policy of its own, the API docs included (`core/apidocs`): same-origin
scripts and styles, nothing inline."""
BASE_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(self), microphone=(), geolocation=(), payment=()"),
)
"""The camera is allowed to this origin: the live purity test films the acid test."""
