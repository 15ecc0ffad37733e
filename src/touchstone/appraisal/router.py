"""Appraisal HTTP API: parse, authorize, call the service, shape the response.

This file holds the appraisal's own life cycle (appraisals, items, photos, evidence,
valuation, decisions, the audit chain) and assembles the module's two routers from the
sub-packages' ones. `router` is authenticated (mounted under /api/v1 by main.py).
`public_router` holds what signs in by itself or not at all: the certificate verification
page, the live page for appraisers (which signs in from the browser) and the purity test's
WebSocket.

Each sub-package's router is included where its routes sat before the module was split, so
the OpenAPI document lists the paths in the same order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request, Response, UploadFile

from touchstone.appraisal import item_classifier, repository, service
from touchstone.appraisal.certificate import router as certificate
from touchstone.appraisal.customers import router as customers
from touchstone.appraisal.dependencies import (
    API,
    MAX_PHOTO_BYTES,
    PHOTO_TYPES,
    AppraisalReads,
    Approver,
    Writer,
)
from touchstone.appraisal.models import Appraisal
from touchstone.appraisal.org_settings import router as org_settings
from touchstone.appraisal.purity import router as purity
from touchstone.appraisal.purity.live import page as live_page
from touchstone.appraisal.purity.live import websocket
from touchstone.appraisal.schemas import (
    AppraisalCreate,
    AppraisalDetail,
    AppraisalOut,
    AppraisalQuery,
    ChainEventOut,
    ChainVerification,
    Decision,
    EvidenceOut,
    ItemCreate,
    ItemOut,
    ValuationRequest,
)
from touchstone.core.deps import SessionDep, SettingsDep
from touchstone.core.idempotency import IdempotencyDep
from touchstone.core.pagination import Page, PageDep, page_response
from touchstone.core.query_params import query_model
from touchstone.core.routing import ApiRouter, upload_limit
from touchstone.core.storage import Storage, StorageDep, request_storage, store_upload

router = ApiRouter(tags=["appraisal"])
router.include_router(org_settings.router)
router.include_router(customers.router)
public_router = ApiRouter()
for _public in (certificate.public_router, live_page.router, websocket.router):
    public_router.include_router(_public)


# --- appraisals and items ----------------------------------------------------------------------


async def _detail(session: SessionDep, appraisal: Appraisal) -> AppraisalDetail:
    items = [ItemOut.model_validate(item) for item in await service.items_of(session, appraisal)]
    out = AppraisalOut.model_validate(appraisal)
    return AppraisalDetail(**out.model_dump(), items=items, valuation=appraisal.valuation)


@router.post("/appraisals", response_model=AppraisalOut, status_code=201)
async def create_appraisal(
    body: AppraisalCreate,
    response: Response,
    session: SessionDep,
    idempotency: IdempotencyDep,
    principal: Writer,
) -> AppraisalOut:
    """Start an appraisal for a customer, in the caller's branch (status `draft`)."""
    appraisal = await service.create_appraisal(session, principal, body)
    location = f"{API}/appraisals/{appraisal.id}"
    response.headers["Location"] = location
    return idempotency.remember(AppraisalOut.model_validate(appraisal), 201, {"Location": location})


@router.get("/appraisals", response_model=Page[AppraisalOut])
async def list_appraisals(
    read: AppraisalReads,
    page: PageDep,
    query: Annotated[AppraisalQuery, Depends(query_model(AppraisalQuery))],
) -> Response:
    items, total = await service.list_appraisals(read, page, query.status)
    return page_response(items, total, page)


@router.get("/appraisals/{appraisal_id}", response_model=AppraisalDetail)
async def get_appraisal(appraisal_id: uuid.UUID, read: AppraisalReads) -> AppraisalDetail:
    """The appraisal with its items and its last valuation (each rule check with its result)."""
    return await service.read_appraisal(read, appraisal_id)


@router.post("/appraisals/{appraisal_id}/items", response_model=ItemOut, status_code=201)
async def add_item(
    appraisal_id: uuid.UUID, body: ItemCreate, session: SessionDep, principal: Writer
) -> ItemOut:
    return ItemOut.model_validate(await service.add_item(session, principal, appraisal_id, body))


@router.post(
    "/appraisals/{appraisal_id}/items/{item_id}/photos",
    response_model=EvidenceOut,
    status_code=201,
)
@upload_limit(lambda settings: MAX_PHOTO_BYTES + settings.max_body_bytes)
async def add_item_photo(
    appraisal_id: uuid.UUID,
    item_id: uuid.UUID,
    photo: UploadFile,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    principal: Writer,
) -> EvidenceOut:
    """A photo of the item, kept as evidence (and classified when a classifier is set up)."""
    appraisal = await service.get_appraisal(session, principal, appraisal_id)
    await service.get_item(session, appraisal, item_id)
    stored = await store_upload(
        storage,
        principal.org_id,
        photo,
        kind=service.ITEM_PHOTO_KIND,
        max_bytes=MAX_PHOTO_BYTES,
        allowed_types=PHOTO_TYPES,
    )
    classification = await item_classifier.classify_stored(
        settings, storage, principal.org_id, stored
    )
    evidence = await service.add_item_photo(
        session, principal, appraisal_id, item_id, stored, classification
    )
    fields = {name: getattr(evidence, name) for name in repository.EVIDENCE.fields}
    return await _evidence_out(storage, principal.org_id, fields)


async def _evidence_out(
    storage: Storage, org_id: uuid.UUID, evidence: Mapping[str, Any]
) -> EvidenceOut:
    """`EvidenceOut` from the fields of `repository.EVIDENCE` (its storage key included)."""
    fields = {name: value for name, value in evidence.items() if name != "storage_key"}
    url = await storage.signed_url(org_id, evidence["storage_key"])
    return EvidenceOut(**fields, download_url=url)


@router.get("/appraisals/{appraisal_id}/evidence", response_model=list[EvidenceOut])
async def list_evidence(
    appraisal_id: uuid.UUID, request: Request, read: AppraisalReads
) -> list[EvidenceOut]:
    """Key frames and photos with their SHA-256 and a time-limited download URL."""
    evidence = await service.read_evidence(read, appraisal_id)
    assert read.principal is not None  # the read confirmed the caller
    storage, org_id = request_storage(request), read.principal.org_id
    return [await _evidence_out(storage, org_id, row) for row in evidence]


router.include_router(purity.router)


# --- valuation, decisions, chain --------------------------------------------------------------


@router.post("/appraisals/{appraisal_id}/valuation", response_model=AppraisalDetail)
async def value_appraisal(
    appraisal_id: uuid.UUID, body: ValuationRequest, session: SessionDep, principal: Writer
) -> AppraisalDetail:
    """Net weight x karat rate per item at today's rates, and every lending rule checked."""
    appraisal = await service.value_appraisal(
        session, principal, appraisal_id, body.requested_amount
    )
    return await _detail(session, appraisal)


@router.post("/appraisals/{appraisal_id}/approve", response_model=AppraisalOut)
async def approve(
    appraisal_id: uuid.UUID, body: Decision, session: SessionDep, principal: Approver
) -> AppraisalOut:
    """Maker-checker: a manager of the same branch, never the appraiser."""
    appraisal = await service.decide(
        session, principal, appraisal_id, approve=True, comment=body.comment
    )
    return AppraisalOut.model_validate(appraisal)


@router.post("/appraisals/{appraisal_id}/reject", response_model=AppraisalOut)
async def reject(
    appraisal_id: uuid.UUID, body: Decision, session: SessionDep, principal: Approver
) -> AppraisalOut:
    appraisal = await service.decide(
        session, principal, appraisal_id, approve=False, comment=body.comment
    )
    return AppraisalOut.model_validate(appraisal)


@router.get("/appraisals/{appraisal_id}/audit-chain", response_model=list[ChainEventOut])
async def audit_chain(appraisal_id: uuid.UUID, read: AppraisalReads) -> list[ChainEventOut]:
    rows = await service.read_chain(read, appraisal_id)
    return [ChainEventOut.model_validate(row) for row in rows]


@router.get("/appraisals/{appraisal_id}/audit-chain/verify", response_model=ChainVerification)
async def verify_audit_chain(appraisal_id: uuid.UUID, read: AppraisalReads) -> ChainVerification:
    """Recompute every hash: `valid` is false from the first changed or missing event on."""
    result = await service.verify_chain(read, appraisal_id)
    return ChainVerification.model_validate(result, from_attributes=True)


router.include_router(certificate.router)
