"""The public certificate verification page, opened from the certificate's QR code.

No sign-in: the certificate number and the digest in the URL are the credentials. The page
shows only what the printed certificate shows (personal numbers masked) and whether the
digest matches; an unknown number gets a plain 404 page that says nothing more.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse

from touchstone.appraisal import certificates
from touchstone.appraisal.certificate import render_verification_html
from touchstone.core.deps import SettingsDep, SystemSessionDep
from touchstone.core.routing import LimitedRoute
from touchstone.core.storage import StorageDep

router = APIRouter(tags=["appraisal"], route_class=LimitedRoute)
PAGE_HEADERS = {
    # The page is self-contained: inline CSS, no scripts, no external assets.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
NOT_FOUND_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Not found</title>'
    "</head><body><h1>No such certificate</h1><p>Check the number, or scan the QR code on "
    "the certificate again.</p></body></html>"
)


@router.get(f"{certificates.VERIFY_PATH}/{{number}}", response_class=HTMLResponse)
async def verify_certificate(
    number: Annotated[str, Path(pattern=certificates.NUMBER_PATTERN)],
    session: SystemSessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    d: Annotated[str, Query(max_length=128, description="The digest printed in the QR code")] = "",
) -> HTMLResponse:
    """The certificate as issued, marked genuine only if its digest matches."""
    found = await certificates.verification(session, number, d, settings, storage)
    if found is None:
        return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=PAGE_HEADERS)
    data, genuine = found
    return HTMLResponse(render_verification_html(data, genuine), headers=PAGE_HEADERS)
