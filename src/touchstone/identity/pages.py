"""The pages an emailed link opens: accept an invitation, or choose a new password.

Plain HTML, CSS and JS served by the app under a strict Content-Security-Policy (this
origin only, nothing inline), so they work offline; the script posts the link's token and
the new password to the public API, exactly as any client may.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi.responses import Response

from touchstone.core.routing import ApiRouter
from touchstone.identity.emails import INVITATION_PAGE, PASSWORD_RESET_PAGE

router = ApiRouter(tags=["auth"], include_in_schema=False)
STATIC = Path(__file__).with_name("static")
ASSETS = "/app/account"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
}


@cache
def _asset(name: str) -> bytes:
    return (STATIC / name).read_bytes()


async def account_page() -> Response:
    return Response(_asset("account.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


router.add_api_route(INVITATION_PAGE, account_page, methods=["GET"])
router.add_api_route(PASSWORD_RESET_PAGE, account_page, methods=["GET"])


@router.get(f"{ASSETS}/account.js")
async def account_script() -> Response:
    script = _asset("account.js")
    return Response(script, media_type="text/javascript; charset=utf-8", headers=HEADERS)


@router.get(f"{ASSETS}/account.css")
async def account_style() -> Response:
    return Response(_asset("account.css"), media_type="text/css; charset=utf-8", headers=HEADERS)
