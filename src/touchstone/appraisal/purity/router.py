"""Purity-test HTTP API: create a test, read it, start it over WebRTC, override its karat.

The WebSocket transport and the appraiser's live page sign in by themselves, so they are
on the module's `public_router` (see `live/`), not here.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Header, Request, Response

from touchstone.appraisal import service as appraisals
from touchstone.appraisal.dependencies import API, TESTING, AppraisalReads, Tester, Writer
from touchstone.appraisal.models import PurityTest
from touchstone.appraisal.purity import service
from touchstone.appraisal.purity.live import webrtc
from touchstone.appraisal.schemas import (
    OverrideCreate,
    OverrideOut,
    PurityTestCreated,
    PurityTestOut,
    WebRtcAnswer,
    WebRtcOffer,
)
from touchstone.core.deps import EntryDep, SessionDep, SettingsDep
from touchstone.core.routing import ApiRouter
from touchstone.core.storage import StorageDep
from touchstone.core.stream_auth import StreamAuthorization

router = ApiRouter()  # tagged by the module router including it


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
    test = await service.create_test(session, principal, appraisal_id, item_id, device_id)
    response.headers["Location"] = f"{API}/purity-sessions/{test.id}"
    return PurityTestCreated(
        **_test_out(test).model_dump(),
        websocket_url=f"{API}/purity-sessions/{test.id}/ws",
        webrtc_offer_url=f"{API}/purity-sessions/{test.id}/webrtc/offer",
        ice_servers=settings.webrtc_ice_servers,
    )


@router.get("/purity-sessions/{test_id}", response_model=PurityTestOut)
async def get_purity_test(test_id: uuid.UUID, read: AppraisalReads) -> PurityTestOut:
    """The seed's purity_test_details: karat, confidence, stage timings, detector versions."""
    return PurityTestOut.model_validate(await service.read_test(read, test_id))


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
    await service.get_test(session, principal, test_id)
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
    override = await appraisals.override_purity(session, principal, appraisal_id, item_id, body)
    return OverrideOut.model_validate(override)
