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
"""HTML that sets no policy of its own: same-origin scripts and styles, nothing inline."""
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; worker-src blob:; connect-src 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""Swagger UI and ReDoc load from a CDN with inline bootstrap code (docs are off in
production unless DOCS_ENABLED)."""
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

BASE_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(self), microphone=(), geolocation=(), payment=()"),
)
"""The camera is allowed to this origin: the live purity test films the acid test."""
