"""Appraisal queries. Each filters by org (RLS is the net) and by branch for branch-bound
callers, so another branch's or bank's appraisal is simply not found."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import BindParameter, Select, String, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.appraisal.models import (
    Appraisal,
    AppraisalSettings,
    Certificate,
    ChainEvent,
    Customer,
    Evidence,
    GoldRate,
    Item,
    PurityTest,
)
from touchstone.appraisal.schemas import (
    AppraisalOut,
    ChainEventOut,
    CustomerOut,
    EvidenceOut,
    ItemOut,
    PurityTestOut,
    SettingsOut,
)
from touchstone.core.auth import Principal
from touchstone.core.pagination import PageShape
from touchstone.core.reads import (
    AnySelect,
    BranchScoped,
    ItemQuery,
    branch_scoped,
    columns_for,
    item_query,
    row_query,
)
from touchstone.core.writes import insert_query

PHONE_MASK = "X" * 6
"""What a customer's phone shows before its last four digits."""

NEW_CUSTOMER = insert_query(
    Customer,
    (
        "id",
        "org_id",
        "full_name",
        "phone_sealed",
        "phone_hash",
        "phone_last4",
        "id_document_type",
        "id_number_sealed",
        "id_number_masked",
        "created_by",
        "created_at",
    ),
)


def by_branch(query: AnySelect, item: type[BaseModel] | None = None) -> BranchScoped:
    """A query on appraisals (or on what hangs off one, joined to it): a branch-bound caller
    sees only its branch's appraisals."""
    return branch_scoped(query, Appraisal.branch_id, item)


def _visibility(table: type[Evidence | Certificate]) -> BranchScoped:
    """A stored object's row where its appraisal is visible (`/files/`)."""
    return by_branch(
        select(table.id)
        .join(Appraisal, Appraisal.id == table.appraisal_id)
        .where(table.org_id == bindparam("org_id"), table.storage_key == bindparam("key"))
        .limit(1)
    )


_EVIDENCE_VISIBLE, _CERTIFICATE_VISIBLE = _visibility(Evidence), _visibility(Certificate)


def evidence_visible(principal: Principal, key: str) -> tuple[ItemQuery, dict[str, Any]]:
    """A stored item photo or purity frame is seen where its appraisal is."""
    return _EVIDENCE_VISIBLE.bound(principal, {"key": key})


def certificate_visible(principal: Principal, key: str) -> tuple[ItemQuery, dict[str, Any]]:
    return _CERTIFICATE_VISIBLE.bound(principal, {"key": key})


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


async def settings_of(
    session: AsyncSession, org_id: uuid.UUID, *, for_update: bool = False
) -> AppraisalSettings | None:
    query = select(AppraisalSettings).where(AppraisalSettings.org_id == org_id)
    if for_update:  # an audited change records what it replaced
        query = query.with_for_update()
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


# --- reads (`core.reads`): compiled once, bound per request ---------------------------------

_ORG: BindParameter[uuid.UUID] = bindparam("org_id")
_ID: BindParameter[uuid.UUID] = bindparam("id")
_IN_BRANCH: BindParameter[uuid.UUID] = bindparam("branch_id")


APPRAISAL_VISIBLE = by_branch(
    select(Appraisal.id).where(Appraisal.org_id == _ORG, Appraisal.id == _ID)
)
"""One row when the caller may see the appraisal `id`."""
APPRAISAL_PAGES = PageShape(
    select(*columns_for(AppraisalOut, Appraisal)).where(Appraisal.org_id == _ORG),
    {
        "branch_id": lambda branch: Appraisal.branch_id == branch,
        "status": lambda status: Appraisal.status == status,
    },
    {"created_at": Appraisal.created_at, "updated_at": Appraisal.updated_at},
    "-created_at",
    Appraisal.id,
    item=AppraisalOut,
)
"""The list: a branch-bound caller's `branch_id` filter is always present."""
APPRAISAL_DETAIL = by_branch(
    select(*columns_for(AppraisalOut, Appraisal), Appraisal.valuation).where(
        Appraisal.org_id == _ORG, Appraisal.id == _ID
    )
)
ITEMS = item_query(
    select(*columns_for(ItemOut, Item))
    .where(Item.org_id == _ORG, Item.appraisal_id == _ID)
    .order_by(Item.created_at, Item.id),
    ItemOut,
)
"""The items of appraisal `id`: read with its visibility, never alone."""
EVIDENCE = row_query(
    select(
        *[getattr(Evidence, name) for name in EvidenceOut.model_fields if name != "download_url"],
        Evidence.storage_key,
    )
    .where(Evidence.org_id == _ORG, Evidence.appraisal_id == _ID)
    .order_by(Evidence.created_at, Evidence.id)
)
"""The evidence of appraisal `id` with its storage key (for the download URL)."""
CHAIN = row_query(
    select(*columns_for(ChainEventOut, ChainEvent), ChainEvent.appraisal_id)
    .where(ChainEvent.org_id == _ORG, ChainEvent.appraisal_id == _ID)
    .order_by(ChainEvent.seq)
)
"""The chain of appraisal `id`, with what each event's hash covers."""
CERTIFICATE = row_query(
    select(
        Certificate.number,
        Certificate.digest,
        Certificate.sha256,
        Certificate.issued_at,
        Certificate.storage_key,
    ).where(Certificate.org_id == _ORG, Certificate.appraisal_id == _ID)
)

_RESUMABLE = (
    (PurityTest.status == "interrupted")
    & PurityTest.snapshot.is_not(None)
    # `snapshot = None` through the ORM stores JSON null, which is no snapshot either.
    & (func.jsonb_typeof(PurityTest.snapshot) != "null")
).label("resumable")
PURITY_TEST = by_branch(
    select(
        *[
            _RESUMABLE if name == "resumable" else getattr(PurityTest, name)
            for name in PurityTestOut.model_fields
        ]
    )
    .join(Appraisal, Appraisal.id == PurityTest.appraisal_id)
    .where(PurityTest.org_id == _ORG, PurityTest.id == _ID),
    PurityTestOut,
)
"""The test, when its appraisal is visible to the caller."""

CUSTOMER_COLUMNS: tuple[Any, ...] = (
    Customer.id,
    Customer.full_name,
    (literal_column(f"'{PHONE_MASK}'", String) + Customer.phone_last4).label("phone_masked"),
    Customer.id_document_type,
    Customer.id_number_masked,
    Customer.photo_key.is_not(None).label("has_photo"),
    Customer.created_at,
)
"""`CustomerOut`: never the phone or ID number in full."""
CUSTOMER = item_query(
    select(*CUSTOMER_COLUMNS).where(Customer.org_id == _ORG, Customer.id == _ID), CustomerOut
)
"""Customers are the bank's, not a branch's: no branch filter."""
SETTINGS = item_query(
    select(*columns_for(SettingsOut, AppraisalSettings)).where(AppraisalSettings.org_id == _ORG),
    SettingsOut,
)
