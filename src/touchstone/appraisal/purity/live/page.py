"""The appraiser's live page: plain HTML, CSS and JS served by the app itself.

Served under a strict Content-Security-Policy (scripts and styles from this origin only, no
inline code, nothing external), so the page works offline and an injected string cannot
run. It signs in from the browser and calls the same API as any client.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi.responses import Response

from touchstone.core.routing import ApiRouter

router = ApiRouter(tags=["appraisal"], include_in_schema=False)
STATIC = Path(__file__).with_name("static")
PAGE_PATH = "/app/appraisal/live"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=()",
    "Cache-Control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@router.get(PAGE_PATH)
async def live_page() -> Response:
    return Response(_asset("live.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get(f"{PAGE_PATH}.js")
async def live_script() -> Response:
    return Response(_asset("live.js"), media_type="text/javascript; charset=utf-8", headers=HEADERS)


@router.get(f"{PAGE_PATH}.css")
async def live_style() -> Response:
    return Response(_asset("live.css"), media_type="text/css; charset=utf-8", headers=HEADERS)
