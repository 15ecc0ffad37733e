"""What an org admin configures: detector engine, device rule, lending policy, devices and
gold rates. Everything here is audited; gold rates are never edited, only superseded."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

import touchstone.identity.service as identity
from touchstone.appraisal import repository
from touchstone.appraisal.exceptions import (
    DeviceNotFound,
    DeviceNotRegistered,
    GoldRateMissing,
    InvalidLendingPolicy,
)
from touchstone.appraisal.models import AppraisalSettings, Device, GoldRate
from touchstone.appraisal.schemas import (
    DeviceCreate,
    DeviceOut,
    GoldRateCreate,
    GoldRateOut,
    SettingsUpdate,
)
from touchstone.appraisal.valuation import KARAT_24, GoldRates, LendingPolicy
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.db import utcnow
from touchstone.core.errors import InvalidInput, NotFound
from touchstone.core.pagination import Items, PageParams, PageShape
from touchstone.core.reads import TenantRead, columns_for, read_items


def _defaults() -> dict[str, Any]:
    """What an org's settings are until an admin changes them (nothing is stored till then)."""
    return {
        "detector_engine": "classical",
        "require_registered_device": False,
        "lending_policy": {},
        "reference_karats": [],
    }


async def org_settings(session: AsyncSession, org_id: uuid.UUID) -> AppraisalSettings:
    """The org's settings row, or the defaults (not stored until an admin changes them)."""
    stored = await repository.settings_of(session, org_id)
    return stored or AppraisalSettings(id=uuid.uuid4(), org_id=org_id, **_defaults())


async def read_settings(read: TenantRead) -> dict[str, Any]:
    """The fields of `SettingsOut` as stored, or the defaults; the policy as stored."""
    found = await read_items(read, lambda p: (repository.SETTINGS, {"org_id": p.org_id}))
    return found[0] if found else _defaults()


def lending_policy(settings: AppraisalSettings) -> LendingPolicy:
    return LendingPolicy.from_mapping(settings.lending_policy)


async def update_settings(
    session: AsyncSession, principal: Principal, data: SettingsUpdate
) -> AppraisalSettings:
    settings = await repository.settings_of(session, principal.org_id)
    if settings is None:
        settings = await org_settings(session, principal.org_id)
        session.add(settings)
    changes: dict[str, object] = {}
    if data.lending_policy is not None:
        try:
            policy = LendingPolicy.from_mapping(data.lending_policy)
        except ValueError as error:
            raise InvalidLendingPolicy(str(error)) from None
        changes["lending_policy"] = policy.to_mapping()
    if data.detector_engine is not None:
        changes["detector_engine"] = data.detector_engine
    if data.require_registered_device is not None:
        changes["require_registered_device"] = data.require_registered_device
    for name, value in changes.items():
        setattr(settings, name, value)
    settings.updated_at = utcnow()
    await session.flush()
    await record_audit(
        session, principal, "appraisal_settings.updated", "appraisal_settings", settings.id, changes
    )
    return settings


async def set_reference_needles(
    session: AsyncSession, principal: Principal, karats: Sequence[str]
) -> AppraisalSettings:
    """The needles purity tests created from now on compare the ornament with (audited with
    what they replace); a test already created keeps the needles it started with."""
    settings = await repository.settings_of(session, principal.org_id, for_update=True)
    if settings is None:
        settings = await org_settings(session, principal.org_id)
        session.add(settings)
    before = list(settings.reference_karats or [])
    settings.reference_karats = list(karats)
    settings.updated_at = utcnow()
    await session.flush()
    await record_audit(
        session,
        principal,
        "appraisal_settings.reference_needles_set",
        "appraisal_settings",
        settings.id,
        {"before": before, "after": list(karats)},
    )
    return settings


# --- devices -----------------------------------------------------------------------------


async def register_device(
    session: AsyncSession, principal: Principal, data: DeviceCreate
) -> Device:
    """Bind a device to an appraiser of this org (an unknown user is a 422, not a leak)."""
    try:
        await identity.get_member(session, principal, data.appraiser_id)
    except NotFound:
        raise InvalidInput("appraiser_id is not a member of this organization") from None
    device = Device(
        id=uuid.uuid4(), org_id=principal.org_id, name=data.name, appraiser_id=data.appraiser_id
    )
    session.add(device)
    await session.flush()
    await record_audit(
        session,
        principal,
        "device.registered",
        "device",
        device.id,
        {"name": data.name, "appraiser_id": str(data.appraiser_id)},
    )
    return device


_DEVICE_PAGES = PageShape(
    select(*columns_for(DeviceOut, Device)).where(Device.org_id == bindparam("org_id")),
    {},
    {"created_at": Device.created_at, "name": Device.name},
    "-created_at",
    item=DeviceOut,
)


async def list_devices(read: TenantRead, page: PageParams) -> tuple[Items, int]:
    return await _DEVICE_PAGES.read(read, page)


async def deactivate_device(
    session: AsyncSession, principal: Principal, device_id: uuid.UUID
) -> Device:
    device = (
        await session.execute(
            select(Device)
            .where(Device.org_id == principal.org_id, Device.id == device_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if device is None:
        raise DeviceNotFound()
    device.is_active = False
    await record_audit(session, principal, "device.deactivated", "device", device.id)
    return device


async def check_device(
    session: AsyncSession, principal: Principal, settings: AppraisalSettings, raw: str | None
) -> uuid.UUID | None:
    """The caller's registered device, required when the org says so; checked as sent."""
    if raw is None or raw == "":
        if settings.require_registered_device:
            raise DeviceNotRegistered("Send the registered device's id in X-Device-Id")
        return None
    try:
        device_id = uuid.UUID(raw)
    except ValueError:
        raise DeviceNotRegistered("X-Device-Id is not a device id") from None
    device = (
        await session.execute(
            select(Device).where(
                Device.org_id == principal.org_id,
                Device.id == device_id,
                Device.appraiser_id == principal.id,
                Device.is_active,
            )
        )
    ).scalar_one_or_none()
    if device is None:
        raise DeviceNotRegistered()
    device.last_used_at = utcnow()
    return device.id


# --- gold rates --------------------------------------------------------------------------


async def set_gold_rate(
    session: AsyncSession, principal: Principal, data: GoldRateCreate
) -> GoldRate:
    rate = GoldRate(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        karat=data.karat,
        rate_per_g=data.rate_per_g,
        effective_from=data.effective_from or utcnow(),
        set_by=principal.id,
    )
    session.add(rate)
    await session.flush()
    await record_audit(
        session,
        principal,
        "gold_rate.set",
        "gold_rate",
        rate.id,
        {"karat": data.karat, "rate_per_g": str(data.rate_per_g)},
    )
    return rate


_RATE_PAGES = PageShape(
    select(*columns_for(GoldRateOut, GoldRate)).where(GoldRate.org_id == bindparam("org_id")),
    {"karat": lambda karat: GoldRate.karat == karat},
    {"effective_from": GoldRate.effective_from, "karat": GoldRate.karat},
    "-effective_from",
    GoldRate.id,
    item=GoldRateOut,
)


async def rate_history(read: TenantRead, page: PageParams, karat: str | None) -> tuple[Items, int]:
    return await _RATE_PAGES.read(read, page, {"karat": karat})


async def gold_rates_at(session: AsyncSession, org_id: uuid.UUID, moment: datetime) -> GoldRates:
    """The rates valuation uses: 24K is required, 18K/22K quotes override the derived ones."""
    rows = await repository.current_rates(session, org_id, moment)
    by_karat: dict[str, Decimal] = {row.karat: row.rate_per_g for row in rows}
    fine = by_karat.pop(KARAT_24, None)
    if fine is None:
        raise GoldRateMissing("An org admin must set the 24K rate per gram first")
    return GoldRates(per_gram_24k=fine, per_karat=by_karat)
