"""Org settings HTTP API: the detector engine, device rule and lending policy, the devices
appraisers test on, and the gold rates valuations use."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
from fastapi import Response

from touchstone.appraisal.dependencies import (
    AppraisalReads,
    DeviceReads,
    DeviceWriter,
    SettingsWriter,
)
from touchstone.appraisal.org_settings import service
from touchstone.appraisal.purity.engines import engine_for
from touchstone.appraisal.purity.pipeline import reading_method
from touchstone.appraisal.schemas import (
    DeviceCreate,
    DeviceOut,
    GoldRateCreate,
    GoldRateOut,
    ReferenceNeedles,
    ReferenceNeedlesOut,
    SettingsOut,
    SettingsUpdate,
    TestedKarat,
)
from touchstone.appraisal.valuation import LendingPolicy
from touchstone.core.deps import SessionDep, SettingsDep
from touchstone.core.pagination import Page, PageDep, page_response
from touchstone.core.routing import ApiRouter

router = ApiRouter()  # tagged by the module router including it


def _settings_out(
    detector_engine: str,
    require_registered_device: bool,
    lending_policy: dict[str, Any],
    reference_karats: list[str],
) -> SettingsOut:
    return SettingsOut(
        detector_engine=detector_engine,
        require_registered_device=require_registered_device,
        lending_policy=LendingPolicy.from_mapping(lending_policy).to_mapping(),
        reference_karats=reference_karats,
    )


def _needles_out(karats: list[str]) -> ReferenceNeedlesOut:
    return ReferenceNeedlesOut(karats=karats, method=reading_method(karats))


@router.get("/appraisal-settings", response_model=SettingsOut)
async def get_settings(read: AppraisalReads) -> SettingsOut:
    """The org's detector engine, device rule and lending policy (defaults filled in)."""
    return _settings_out(**await service.read_settings(read))


@router.patch("/appraisal-settings", response_model=SettingsOut)
async def update_settings(
    body: SettingsUpdate, session: SessionDep, settings: SettingsDep, principal: SettingsWriter
) -> SettingsOut:
    """An engine is loaded before it is chosen: `onnx-yolo` needs YOLO_RUBBING_MODEL and
    YOLO_ACID_MODEL to be usable models, or the change is refused (422)."""
    if body.detector_engine is not None:
        await anyio.to_thread.run_sync(engine_for, body.detector_engine, settings)
    stored = await service.update_settings(session, principal, body)
    return _settings_out(
        stored.detector_engine,
        stored.require_registered_device,
        stored.lending_policy,
        stored.reference_karats,
    )


@router.get("/appraisal-settings/reference-needles", response_model=ReferenceNeedlesOut)
async def get_reference_needles(read: AppraisalReads) -> ReferenceNeedlesOut:
    """The touch needles of known karat rubbed beside the ornament, and the reading method
    a purity test created now uses."""
    return _needles_out((await service.read_settings(read))["reference_karats"])


@router.put("/appraisal-settings/reference-needles", response_model=ReferenceNeedlesOut)
async def put_reference_needles(
    body: ReferenceNeedles, session: SessionDep, principal: SettingsWriter
) -> ReferenceNeedlesOut:
    """Karats in ascending order, each once (`[]`: no needles, an absolute reading, with a
    lower confidence). Tests already created keep the needles they started with."""
    stored = await service.set_reference_needles(session, principal, body.karats)
    return _needles_out(stored.reference_karats)


@router.post("/devices", response_model=DeviceOut, status_code=201)
async def register_device(
    body: DeviceCreate, session: SessionDep, principal: DeviceWriter
) -> DeviceOut:
    """Bind a device to an appraiser; its id goes in `X-Device-Id` when testing purity."""
    return DeviceOut.model_validate(await service.register_device(session, principal, body))


@router.get("/devices", response_model=Page[DeviceOut])
async def list_devices(read: DeviceReads, page: PageDep) -> Response:
    items, total = await service.list_devices(read, page)
    return page_response(items, total, page)


@router.post("/devices/{device_id}/deactivate", response_model=DeviceOut)
async def deactivate_device(
    device_id: uuid.UUID, session: SessionDep, principal: DeviceWriter
) -> DeviceOut:
    device = await service.deactivate_device(session, principal, device_id)
    return DeviceOut.model_validate(device)


@router.post("/gold-rates", response_model=GoldRateOut, status_code=201)
async def set_gold_rate(
    body: GoldRateCreate, session: SessionDep, principal: SettingsWriter
) -> GoldRateOut:
    """A new rate per gram for one karat, from now (or `effective_from`) on."""
    return GoldRateOut.model_validate(await service.set_gold_rate(session, principal, body))


@router.get("/gold-rates", response_model=Page[GoldRateOut])
async def gold_rate_history(
    read: AppraisalReads, page: PageDep, karat: TestedKarat | None = None
) -> Response:
    items, total = await service.rate_history(read, page, karat)
    return page_response(items, total, page)
