"""Appraisal HTTP API: parse, authorize, call the service, shape the response.

`router` is authenticated (mounted under /api/v1 by main.py). `public_router` holds what
signs in by itself or not at all: the certificate verification page, the live page for
appraisers (which signs in from the browser) and the purity test's WebSocket.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response, UploadFile

from touchstone.appraisal import (
    certificates,
    classifier,
    customers,
    live,
    org_settings,
    purity_tests,
    service,
    webrtc,
)
from touchstone.appraisal.live_page import router as live_page_router
from touchstone.appraisal.models import (
    Appraisal,
    AppraisalSettings,
    AppraisalStatus,
    Certificate,
    Evidence,
    PurityTest,
)
from touchstone.appraisal.schemas import (
    AppraisalCreate,
    AppraisalDetail,
    AppraisalOut,
    CertificateOut,
    ChainEventOut,
    ChainVerification,
    CustomerCreate,
    CustomerOut,
    Decision,
    DeviceCreate,
    DeviceOut,
    EvidenceOut,
    GoldRateCreate,
    GoldRateOut,
    ItemCreate,
    ItemOut,
    OverrideCreate,
    OverrideOut,
    PurityTestCreated,
    PurityTestOut,
    SettingsOut,
    SettingsUpdate,
    TestedKarat,
    ValuationRequest,
    WebRtcAnswer,
    WebRtcOffer,
)
from touchstone.appraisal.verify_page import router as verify_router
from touchstone.appraisal.websocket import TESTING
from touchstone.appraisal.websocket import router as websocket_router
from touchstone.core.auth import Principal
from touchstone.core.deps import EntryDep, SessionDep, SettingsDep, require
from touchstone.core.errors import Forbidden
from touchstone.core.idempotency import IdempotencyDep
from touchstone.core.pagination import Page, PageDep, page_of
from touchstone.core.routing import LimitedRoute, upload_limit
from touchstone.core.schemas import PlainText
from touchstone.core.storage import Storage, StorageDep, store_upload
from touchstone.core.stream_auth import StreamAuthorization

router = APIRouter(tags=["appraisal"], route_class=LimitedRoute)
public_router = APIRouter(route_class=LimitedRoute)
for _public in (verify_router, live_page_router, websocket_router):
    public_router.include_router(_public)

Reader = Annotated[Principal, Depends(require("appraisals:read"))]
Writer = Annotated[Principal, Depends(require("appraisals:write"))]
Approver = Annotated[Principal, Depends(require("appraisals:approve"))]
Tester = Annotated[Principal, Depends(require(TESTING))]
CustomerReader = Annotated[Principal, Depends(require("customers:read"))]
CustomerWriter = Annotated[Principal, Depends(require("customers:write"))]
SettingsWriter = Annotated[Principal, Depends(require("appraisal_settings:write"))]
DeviceWriter = Annotated[Principal, Depends(require("devices:write"))]
PHOTO_TYPES = frozenset({"image/jpeg", "image/png"})
MAX_PHOTO_BYTES = 10 * 1024 * 1024
API = "/api/v1"


# --- settings, devices, gold rates -----------------------------------------------------------


def _settings_out(settings: AppraisalSettings) -> SettingsOut:
    return SettingsOut(
        detector_engine=settings.detector_engine,
        require_registered_device=settings.require_registered_device,
        lending_policy=org_settings.lending_policy(settings).to_mapping(),
    )


@router.get("/appraisal-settings", response_model=SettingsOut)
async def get_settings(session: SessionDep, principal: Reader) -> SettingsOut:
    """The org's detector engine, device rule and lending policy (defaults filled in)."""
    return _settings_out(await org_settings.org_settings(session, principal.org_id))


@router.patch("/appraisal-settings", response_model=SettingsOut)
async def update_settings(
    body: SettingsUpdate, session: SessionDep, settings: SettingsDep, principal: SettingsWriter
) -> SettingsOut:
    """An engine is loaded before it is chosen: `onnx-yolo` needs YOLO_RUBBING_MODEL and
    YOLO_ACID_MODEL to be usable models, or the change is refused (422)."""
    if body.detector_engine is not None:
        await anyio.to_thread.run_sync(live.engine_for, body.detector_engine, settings)
    return _settings_out(await org_settings.update_settings(session, principal, body))


@router.post("/devices", response_model=DeviceOut, status_code=201)
async def register_device(
    body: DeviceCreate, session: SessionDep, principal: DeviceWriter
) -> DeviceOut:
    """Bind a device to an appraiser; its id goes in `X-Device-Id` when testing purity."""
    return DeviceOut.model_validate(await org_settings.register_device(session, principal, body))


@router.get("/devices", response_model=Page[DeviceOut])
async def list_devices(
    session: SessionDep, page: PageDep, principal: DeviceWriter
) -> Page[DeviceOut]:
    items, total = await org_settings.list_devices(session, principal, page)
    return page_of(DeviceOut, items, total, page)


@router.post("/devices/{device_id}/deactivate", response_model=DeviceOut)
async def deactivate_device(
    device_id: uuid.UUID, session: SessionDep, principal: DeviceWriter
) -> DeviceOut:
    device = await org_settings.deactivate_device(session, principal, device_id)
    return DeviceOut.model_validate(device)


@router.post("/gold-rates", response_model=GoldRateOut, status_code=201)
async def set_gold_rate(
    body: GoldRateCreate, session: SessionDep, principal: SettingsWriter
) -> GoldRateOut:
    """A new rate per gram for one karat, from now (or `effective_from`) on."""
    return GoldRateOut.model_validate(await org_settings.set_gold_rate(session, principal, body))


@router.get("/gold-rates", response_model=Page[GoldRateOut])
async def gold_rate_history(
    session: SessionDep, page: PageDep, principal: Reader, karat: TestedKarat | None = None
) -> Page[GoldRateOut]:
    items, total = await org_settings.rate_history(session, principal, page, karat)
    return page_of(GoldRateOut, items, total, page)


# --- customers -------------------------------------------------------------------------------


@router.post("/customers", response_model=CustomerOut, status_code=201)
async def create_customer(
    body: CustomerCreate,
    session: SessionDep,
    settings: SettingsDep,
    idempotency: IdempotencyDep,
    principal: CustomerWriter,
) -> CustomerOut:
    customer = await customers.create_customer(session, principal, body, settings)
    return idempotency.remember(customers.customer_out(customer))


@router.get("/customers", response_model=Page[CustomerOut])
async def search_customers(
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    principal: CustomerReader,
    name: Annotated[PlainText | None, Query(max_length=200)] = None,
    phone: Annotated[PlainText | None, Query(max_length=30)] = None,
) -> Page[CustomerOut]:
    """By part of the name, the full phone number, or its last digits (up to four)."""
    rows, total = await customers.search_customers(
        session, principal, page, settings, name=name, phone=phone
    )
    return Page[CustomerOut](
        items=[customers.customer_out(row) for row in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/customers/{customer_id}", response_model=CustomerOut)
async def get_customer(
    customer_id: uuid.UUID, session: SessionDep, principal: CustomerReader
) -> CustomerOut:
    return customers.customer_out(await customers.get_customer(session, principal, customer_id))


@router.put("/customers/{customer_id}/photo", response_model=CustomerOut)
@upload_limit(lambda settings: MAX_PHOTO_BYTES + settings.max_body_bytes)
async def set_customer_photo(
    customer_id: uuid.UUID,
    photo: UploadFile,
    session: SessionDep,
    storage: StorageDep,
    principal: CustomerWriter,
) -> CustomerOut:
    await customers.get_customer(session, principal, customer_id)
    stored = await store_upload(
        storage,
        principal.org_id,
        photo,
        kind=customers.PHOTO_KIND,
        max_bytes=MAX_PHOTO_BYTES,
        allowed_types=PHOTO_TYPES,
    )
    customer = await customers.attach_photo(session, principal, customer_id, stored)
    return customers.customer_out(customer)


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
    session: SessionDep, page: PageDep, principal: Reader, status: AppraisalStatus | None = None
) -> Page[AppraisalOut]:
    items, total = await service.list_appraisals(session, principal, page, status)
    return page_of(AppraisalOut, items, total, page)


@router.get("/appraisals/{appraisal_id}", response_model=AppraisalDetail)
async def get_appraisal(
    appraisal_id: uuid.UUID, session: SessionDep, principal: Reader
) -> AppraisalDetail:
    """The appraisal with its items and its last valuation (each rule check with its result)."""
    return await _detail(session, await service.get_appraisal(session, principal, appraisal_id))


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
    classification = await classifier.classify_stored(settings, storage, principal.org_id, stored)
    evidence = await service.add_item_photo(
        session, principal, appraisal_id, item_id, stored, classification
    )
    return await _evidence_out(storage, principal, evidence)


async def _evidence_out(storage: Storage, principal: Principal, evidence: Evidence) -> EvidenceOut:
    url = await storage.signed_url(principal.org_id, evidence.storage_key)
    fields = {
        name: getattr(evidence, name) for name in EvidenceOut.model_fields if name != "download_url"
    }
    return EvidenceOut(**fields, download_url=url)


@router.get("/appraisals/{appraisal_id}/evidence", response_model=list[EvidenceOut])
async def list_evidence(
    appraisal_id: uuid.UUID, session: SessionDep, storage: StorageDep, principal: Reader
) -> list[EvidenceOut]:
    """Key frames and photos with their SHA-256 and a time-limited download URL."""
    appraisal = await service.get_appraisal(session, principal, appraisal_id)
    return [
        await _evidence_out(storage, principal, row)
        for row in await service.evidence_of(session, appraisal)
    ]


# --- purity tests ------------------------------------------------------------------------------


def _test_out(test: PurityTest) -> PurityTestOut:
    return PurityTestOut.model_validate(
        {
            **{
                name: getattr(test, name)
                for name in PurityTestOut.model_fields
                if name != "resumable"
            },
            "resumable": test.status == "interrupted" and test.snapshot is not None,
        }
    )


@router.post(
    "/appraisals/{appraisal_id}/items/{item_id}/purity-sessions",
    response_model=PurityTestCreated,
    status_code=201,
)
async def create_purity_test(
    appraisal_id: uuid.UUID,
    item_id: uuid.UUID,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: Tester,
    device_id: Annotated[str | None, Header(alias="X-Device-Id", max_length=64)] = None,
) -> PurityTestCreated:
    """A live purity test of the item: stream it over WebRTC (offer URL) or the WebSocket."""
    test = await purity_tests.create_test(session, principal, appraisal_id, item_id, device_id)
    response.headers["Location"] = f"{API}/purity-sessions/{test.id}"
    return PurityTestCreated(
        **_test_out(test).model_dump(),
        websocket_url=f"{API}/purity-sessions/{test.id}/ws",
        webrtc_offer_url=f"{API}/purity-sessions/{test.id}/webrtc/offer",
        ice_servers=settings.webrtc_ice_servers,
    )


@router.get("/purity-sessions/{test_id}", response_model=PurityTestOut)
async def get_purity_test(
    test_id: uuid.UUID, session: SessionDep, principal: Reader
) -> PurityTestOut:
    """The seed's purity_test_details: karat, confidence, stage timings, detector versions."""
    return _test_out(await purity_tests.get_test(session, principal, test_id))


@router.post("/purity-sessions/{test_id}/webrtc/offer", response_model=WebRtcAnswer)
async def webrtc_offer(
    test_id: uuid.UUID,
    body: WebRtcOffer,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    principal: Tester,
    entry: EntryDep,
) -> WebRtcAnswer:
    """Start (or resume) the test over WebRTC: SDP offer in, SDP answer out. The session
    ends, the test left resumable, when the credential ends or loses `purity:test`."""
    await purity_tests.get_test(session, principal, test_id)
    database = request.app.state.database
    authorization = StreamAuthorization(
        database, entry, principal, frozenset({TESTING}), settings.stream_recheck_seconds
    )
    description = await webrtc.answer(database, storage, settings, authorization, test_id, body.sdp)
    return WebRtcAnswer(sdp=description.sdp, type="answer", ice_servers=settings.webrtc_ice_servers)


@router.post(
    "/appraisals/{appraisal_id}/items/{item_id}/purity-override",
    response_model=OverrideOut,
    status_code=201,
)
async def override_purity(
    appraisal_id: uuid.UUID,
    item_id: uuid.UUID,
    body: OverrideCreate,
    session: SessionDep,
    principal: Writer,
) -> OverrideOut:
    """Correct a tested item's karat, with a reason (audited, and on the appraisal's chain)."""
    override = await service.override_purity(session, principal, appraisal_id, item_id, body)
    return OverrideOut.model_validate(override)


# --- valuation, decisions, chain, certificate ----------------------------------------------------


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
async def audit_chain(
    appraisal_id: uuid.UUID, session: SessionDep, principal: Reader
) -> list[ChainEventOut]:
    rows = await service.chain_of(session, principal, appraisal_id)
    return [ChainEventOut.model_validate(row) for row in rows]


@router.get("/appraisals/{appraisal_id}/audit-chain/verify", response_model=ChainVerification)
async def verify_audit_chain(
    appraisal_id: uuid.UUID, session: SessionDep, principal: Reader
) -> ChainVerification:
    """Recompute every hash: `valid` is false from the first changed or missing event on."""
    result = await service.verify_chain(session, principal, appraisal_id)
    return ChainVerification.model_validate(result, from_attributes=True)


async def _certificate_out(
    request: Request, storage: Storage, principal: Principal, certificate: Certificate
) -> CertificateOut:
    return CertificateOut(
        number=certificate.number,
        digest=certificate.digest,
        sha256=certificate.sha256,
        issued_at=certificate.issued_at,
        verify_url=certificates.verify_url(
            str(request.base_url), certificate.number, certificate.digest
        ),
        download_url=await storage.signed_url(principal.org_id, certificate.storage_key),
    )


@router.post(
    "/appraisals/{appraisal_id}/certificate", response_model=CertificateOut, status_code=201
)
async def issue_certificate(
    appraisal_id: uuid.UUID,
    request: Request,
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
    certificate = await certificates.issue(
        session, principal, appraisal_id, settings, storage, str(request.base_url)
    )
    return await _certificate_out(request, storage, principal, certificate)


@router.get("/appraisals/{appraisal_id}/certificate", response_model=CertificateOut)
async def get_certificate(
    appraisal_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    principal: Reader,
) -> CertificateOut:
    certificate = await certificates.get_certificate(session, principal, appraisal_id)
    return await _certificate_out(request, storage, principal, certificate)
