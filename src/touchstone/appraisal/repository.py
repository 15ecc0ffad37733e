"""Appraisal queries. Each filters by org (RLS is the net) and by branch for branch-bound
callers, so another branch's or bank's appraisal is simply not found."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.appraisal.models import (
    Appraisal,
    AppraisalSettings,
    Certificate,
    Customer,
    Evidence,
    GoldRate,
    Item,
    PurityTest,
)
from touchstone.core.auth import Principal


async def evidence_visible(session: AsyncSession, principal: Principal, key: str) -> bool:
    """A stored item photo or purity frame is seen where its appraisal is (`/files/`)."""
    return await _visible_through_appraisal(session, principal, Evidence, key)


async def certificate_visible(session: AsyncSession, principal: Principal, key: str) -> bool:
    return await _visible_through_appraisal(session, principal, Certificate, key)


async def _visible_through_appraisal(
    session: AsyncSession, principal: Principal, table: type[Evidence | Certificate], key: str
) -> bool:
    query = (
        select(table.id)
        .join(Appraisal, Appraisal.id == table.appraisal_id)
        .where(table.org_id == principal.org_id, table.storage_key == key)
    )
    if (scope := principal.branch_scope) is not None:
        query = query.where(Appraisal.branch_id == scope)
    return (await session.execute(query.limit(1))).first() is not None


def appraisals_query(principal: Principal) -> Select[Appraisal]:
    query = select(Appraisal).where(Appraisal.org_id == principal.org_id)
    if (scope := principal.branch_scope) is not None:
        query = query.where(Appraisal.branch_id == scope)
    return query


async def get_appraisal(
    session: AsyncSession, principal: Principal, appraisal_id: uuid.UUID, *, for_update: bool
) -> Appraisal | None:
    query = appraisals_query(principal).where(Appraisal.id == appraisal_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def items_of(
    session: AsyncSession, org_id: uuid.UUID, appraisal_id: uuid.UUID
) -> Sequence[Item]:
    query = (
        select(Item)
        .where(Item.org_id == org_id, Item.appraisal_id == appraisal_id)
        .order_by(Item.created_at, Item.id)
    )
    return (await session.execute(query)).scalars().all()


async def get_item(
    session: AsyncSession, org_id: uuid.UUID, appraisal_id: uuid.UUID, item_id: uuid.UUID
) -> Item | None:
    query = select(Item).where(
        Item.org_id == org_id, Item.appraisal_id == appraisal_id, Item.id == item_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def get_customer(
    session: AsyncSession, org_id: uuid.UUID, customer_id: uuid.UUID
) -> Customer | None:
    query = select(Customer).where(Customer.org_id == org_id, Customer.id == customer_id)
    return (await session.execute(query)).scalar_one_or_none()


async def get_test(
    session: AsyncSession, principal: Principal, test_id: uuid.UUID, *, for_update: bool
) -> PurityTest | None:
    """The test, only when its appraisal is visible to the caller."""
    query = (
        select(PurityTest)
        .join(Appraisal, Appraisal.id == PurityTest.appraisal_id)
        .where(PurityTest.org_id == principal.org_id, PurityTest.id == test_id)
    )
    if (scope := principal.branch_scope) is not None:
        query = query.where(Appraisal.branch_id == scope)
    if for_update:
        query = query.with_for_update(of=PurityTest)
    return (await session.execute(query)).scalar_one_or_none()


async def tests_of_item(
    session: AsyncSession, org_id: uuid.UUID, item_id: uuid.UUID
) -> Sequence[PurityTest]:
    query = (
        select(PurityTest)
        .where(PurityTest.org_id == org_id, PurityTest.item_id == item_id)
        .order_by(PurityTest.created_at.desc(), PurityTest.id)
    )
    return (await session.execute(query)).scalars().all()


async def settings_of(session: AsyncSession, org_id: uuid.UUID) -> AppraisalSettings | None:
    query = select(AppraisalSettings).where(AppraisalSettings.org_id == org_id)
    return (await session.execute(query)).scalar_one_or_none()


async def current_rates(
    session: AsyncSession, org_id: uuid.UUID, moment: datetime
) -> Sequence[GoldRate]:
    """The latest rate per karat that is in effect at `moment`."""
    query = (
        select(GoldRate)
        .where(GoldRate.org_id == org_id, GoldRate.effective_from <= moment)
        .ext(distinct_on(GoldRate.karat))
        .order_by(GoldRate.karat, GoldRate.effective_from.desc(), GoldRate.created_at.desc())
    )
    return (await session.execute(query)).scalars().all()


async def evidence_of(
    session: AsyncSession, org_id: uuid.UUID, appraisal_id: uuid.UUID
) -> Sequence[Evidence]:
    query = (
        select(Evidence)
        .where(Evidence.org_id == org_id, Evidence.appraisal_id == appraisal_id)
        .order_by(Evidence.created_at, Evidence.id)
    )
    return (await session.execute(query)).scalars().all()


async def untested_items(session: AsyncSession, org_id: uuid.UUID, appraisal_id: uuid.UUID) -> int:
    query = select(func.count()).where(
        Item.org_id == org_id, Item.appraisal_id == appraisal_id, Item.karat.is_(None)
    )
    return int((await session.execute(query)).scalar_one())
