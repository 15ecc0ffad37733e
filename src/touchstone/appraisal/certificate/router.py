"""Certificate HTTP API: issuing and reading one (`router`, signed in), and the public
verification page its QR code opens (`public_router`).

The page needs no sign-in: the certificate number and the digest in the URL are the
credentials. With the digest the QR code carries, it shows what the printed certificate
shows (personal numbers masked) and its evidence images; without it, "not verified" and
nothing else. An unknown number gets a plain 404 page that says nothing more.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse

from touchstone.appraisal import repository
from touchstone.appraisal.certificate import service
from touchstone.appraisal.certificate.page import (
    render_not_verified_html,
    render_verification_html,
)
from touchstone.appraisal.dependencies import AppraisalReads, Reader
from touchstone.appraisal.schemas import CertificateOut
from touchstone.core.config import Settings
from touchstone.core.deps import SessionDep, SettingsDep, SystemSessionDep
from touchstone.core.errors import Forbidden
from touchstone.core.routing import ApiRouter
from touchstone.core.storage import Storage, StorageDep, request_storage

router = ApiRouter()  # tagged by the module router including it
public_router = ApiRouter(tags=["appraisal"])
PAGE_HEADERS = {
    # The page is self-contained: inline CSS, images as data: URLs, no scripts, nothing external.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
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


async def _certificate_out(
    settings: Settings, storage: Storage, org_id: uuid.UUID, certificate: Mapping[str, Any]
) -> CertificateOut:
    """`CertificateOut` from the fields of `repository.CERTIFICATE`; the verification URL
    starts at PUBLIC_URL, as printed, never at the request's host."""
    number, digest = certificate["number"], certificate["digest"]
    return CertificateOut(
        number=number,
        digest=digest,
        sha256=certificate["sha256"],
        issued_at=certificate["issued_at"],
        verify_url=service.verify_url(settings.link_base, number, digest),
        download_url=await storage.signed_url(org_id, certificate["storage_key"]),
    )


@router.post(
    "/appraisals/{appraisal_id}/certificate", response_model=CertificateOut, status_code=201
)
async def issue_certificate(
    appraisal_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    principal: Reader,
) -> CertificateOut:
    """The approved appraisal's PDF certificate with a QR code to its verification page.

    Issued once; asking again returns the same certificate.
    """
    if not (principal.can("appraisals:write") or principal.can("appraisals:approve")):
        raise Forbidden("Issuing a certificate needs appraisals:write or appraisals:approve")
    certificate = await service.issue(session, principal, appraisal_id, settings, storage)
    fields = {name: getattr(certificate, name) for name in repository.CERTIFICATE.fields}
    return await _certificate_out(settings, storage, principal.org_id, fields)


@router.get("/appraisals/{appraisal_id}/certificate", response_model=CertificateOut)
async def get_certificate(
    appraisal_id: uuid.UUID, request: Request, read: AppraisalReads
) -> CertificateOut:
    """The certificate as issued: read in one round trip, no document rendered (the PDF was
    stored at issue); a signed download URL for it."""
    certificate = await service.read_certificate(read, appraisal_id)
    assert read.principal is not None  # the read confirmed the caller
    settings: Settings = request.app.state.settings
    return await _certificate_out(
        settings, request_storage(request), read.principal.org_id, certificate
    )


@public_router.get(f"{service.VERIFY_PATH}/{{number}}", response_class=HTMLResponse)
async def verify_certificate(
    number: Annotated[str, Path(pattern=service.NUMBER_PATTERN)],
    session: SystemSessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    d: Annotated[str, Query(max_length=128, description="The digest printed in the QR code")] = "",
) -> HTMLResponse:
    """The certificate as issued when its digest matches; "not verified" alone otherwise."""
    found = await service.verification(session, number, d, settings, storage)
    if found is None:
        return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=PAGE_HEADERS)
    if isinstance(found, service.NotVerified):
        return HTMLResponse(render_not_verified_html(number), headers=PAGE_HEADERS)
    return HTMLResponse(render_verification_html(found), headers=PAGE_HEADERS)
