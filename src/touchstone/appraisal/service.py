"""Appraisal use cases: the life cycle, items, overrides, valuation, maker-checker approval.

The only file other modules may import. Functions flush, never commit. Every state change
is written three ways in the same transaction: the platform audit log (`record_audit`), the
appraisal's own hash chain (`chain.append`) and, where clients follow it live, an outbox
event (`publish`). Writes lock the appraisal row first, so status checks and chain appends
never race.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

import touchstone.identity.service as identity
from touchstone.appraisal import chain, repository
from touchstone.appraisal.exceptions import (
    AppraisalNotFound,
    BranchMismatch,
    BranchRequired,
    IllegalTransition,
    InvalidValuation,
    ItemNotFound,
    LendingChecksFailed,
    NoPurityTest,
    OwnAppraisal,
)
from touchstone.appraisal.models import (
    Appraisal,
    AppraisalStatus,
    Evidence,
    EvidenceKind,
    Item,
    PurityOverride,
    PurityTest,
    PurityTestStatus,
)
from touchstone.appraisal.org_settings import service as org_settings
from touchstone.appraisal.schemas import (
    AppraisalCreate,
    AppraisalDetail,
    GoldRateCreate,
    ItemCreate,
    OverrideCreate,
)
from touchstone.appraisal.valuation import (
    GoldRates,
    ItemForValuation,
    LendingPolicy,
    Valuation,
    assess,
    net_weight,
)
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal, system_principal
from touchstone.core.db import Database, utcnow
from touchstone.core.errors import InvalidInput, NotFound
from touchstone.core.events import publish
from touchstone.core.pagination import Items, PageParams
from touchstone.core.reads import BranchScoped, ItemQuery, Statements, TenantRead
from touchstone.core.storage import StoredObject, file_kind

ITEM_PHOTO_KIND = file_kind(
    "item-photo", permission="appraisals:read", visible=repository.evidence_visible
)

S = AppraisalStatus
TRANSITIONS: dict[AppraisalStatus, frozenset[AppraisalStatus]] = {
    S.DRAFT: frozenset({S.ITEMS_ADDED}),
    S.ITEMS_ADDED: frozenset({S.PURITY_IN_PROGRESS}),
    S.PURITY_IN_PROGRESS: frozenset({S.PURITY_COMPLETED}),
    # A retest reopens the purity stage; valuing moves on.
    S.PURITY_COMPLETED: frozenset({S.PURITY_IN_PROGRESS, S.VALUED}),
    # Revaluing (new rates, another amount) stays valued; an override or retest goes back.
    S.VALUED: frozenset(
        {S.VALUED, S.PURITY_COMPLETED, S.PURITY_IN_PROGRESS, S.APPROVED, S.REJECTED}
    ),
    S.APPROVED: frozenset(),
    S.REJECTED: frozenset(),
}
ITEMS_OPEN = frozenset({S.DRAFT, S.ITEMS_ADDED})


def ensure_can_move(appraisal: Appraisal, target: AppraisalStatus) -> None:
    current = AppraisalStatus(appraisal.status)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(
            f"An appraisal in status '{current}' cannot move to '{target}'",
            extra={"current_status": current.value, "target_status": target.value},
        )


def move(appraisal: Appraisal, target: AppraisalStatus) -> AppraisalStatus:
    """Change the status if the life cycle allows it; otherwise 409 and nothing changes."""
    current = AppraisalStatus(appraisal.status)
    ensure_can_move(appraisal, target)
    appraisal.status = target
    appraisal.updated_at = utcnow()
    return current


async def record(
    session: AsyncSession,
    principal: Principal,
    appraisal: Appraisal,
    action: str,
    data: dict[str, Any] | None = None,
    *,
    topic: str | None = None,
) -> None:
    """The audit log, the appraisal's chain and (with `topic`) a live event, together."""
    details = {"appraisal_id": str(appraisal.id), "status": appraisal.status, **(data or {})}
    await record_audit(session, principal, action, "appraisal", appraisal.id, details)
    await chain.append(session, principal, appraisal.id, action, details)
    if topic is not None:
        await publish(
            session,
            appraisal.org_id,
            topic,
            aggregate=("appraisal", appraisal.id),
            data={**details, "branch_id": str(appraisal.branch_id)},
        )


async def _name_of(session: AsyncSession, principal: Principal) -> str:
    """The caller's own name (API keys and the platform act under their kind)."""
    if principal.user_id is None:
        return principal.kind
    member = await identity.get_member(session, principal, principal.user_id)
    return str(member.full_name)


# --- appraisals ----------------------------------------------------------------------------


async def create_appraisal(
    session: AsyncSession, principal: Principal, data: AppraisalCreate
) -> Appraisal:
    scope = principal.branch_scope
    if scope is not None and data.branch_id not in (None, scope):
        raise BranchMismatch("Branch-bound users create appraisals in their own branch")
    branch_id = scope or data.branch_id
    if branch_id is None:
        raise BranchRequired()
    try:
        await identity.get_branch(session, principal, branch_id)
    except NotFound:
        raise InvalidInput("branch_id is not a branch of this organization") from None
    if await repository.get_customer(session, principal.org_id, data.customer_id) is None:
        raise InvalidInput("customer_id is not a customer of this organization")
    appraisal = Appraisal(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        branch_id=branch_id,
        appraiser_id=principal.id,
        appraiser_name=await _name_of(session, principal),
        customer_id=data.customer_id,
        status=AppraisalStatus.DRAFT,
        requested_amount=data.requested_amount,
    )
    session.add(appraisal)
    await session.flush()
    await record(
        session,
        principal,
        appraisal,
        "appraisal.created",
        {"customer_id": str(data.customer_id)},
        topic="appraisal.created",
    )
    return appraisal


async def get_appraisal(
    session: AsyncSession,
    principal: Principal,
    appraisal_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Appraisal:
    appraisal = await repository.get_appraisal(
        session, principal, appraisal_id, for_update=for_update
    )
    if appraisal is None:
        raise AppraisalNotFound()
    return appraisal


async def items_of(session: AsyncSession, appraisal: Appraisal) -> Sequence[Item]:
    return await repository.items_of(session, appraisal.org_id, appraisal.id)


async def get_item(session: AsyncSession, appraisal: Appraisal, item_id: uuid.UUID) -> Item:
    item = await repository.get_item(session, appraisal.org_id, appraisal.id, item_id)
    if item is None:
        raise ItemNotFound()
    return item


async def add_item(
    session: AsyncSession, principal: Principal, appraisal_id: uuid.UUID, data: ItemCreate
) -> Item:
    appraisal = await get_appraisal(session, principal, appraisal_id, for_update=True)
    if appraisal.status not in ITEMS_OPEN:
        raise IllegalTransition(
            f"Items can be added in status draft or items_added, not '{appraisal.status}'"
        )
    try:
        net = net_weight(data.gross_weight_g, data.deduction_g)
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    item = Item(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        appraisal_id=appraisal.id,
        item_type=data.item_type,
        description=data.description,
        count=data.count,
        gross_weight_g=data.gross_weight_g,
        deduction_g=data.deduction_g,
        net_weight_g=net,
    )
    session.add(item)
    if appraisal.status == AppraisalStatus.DRAFT:
        move(appraisal, AppraisalStatus.ITEMS_ADDED)
    await session.flush()
    await record(
        session,
        principal,
        appraisal,
        "appraisal.item_added",
        {
            "item_id": str(item.id),
            "item_type": item.item_type,
            "count": item.count,
            "gross_weight_g": str(item.gross_weight_g),
            "deduction_g": str(item.deduction_g),
        },
    )
    return item


async def add_evidence(
    session: AsyncSession,
    principal: Principal,
    appraisal: Appraisal,
    stored: StoredObject,
    kind: EvidenceKind,
    *,
    item_id: uuid.UUID | None = None,
    purity_test_id: uuid.UUID | None = None,
) -> Evidence:
    evidence = Evidence(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        appraisal_id=appraisal.id,
        item_id=item_id,
        purity_test_id=purity_test_id,
        kind=kind,
        storage_key=stored.key,
        sha256=stored.sha256,
        size=stored.size,
        content_type=stored.content_type,
    )
    session.add(evidence)
    await session.flush()
    await record(
        session,
        principal,
        appraisal,
        "appraisal.evidence_added",
        {"evidence_id": str(evidence.id), "kind": kind.value, "sha256": stored.sha256},
    )
    return evidence


async def add_item_photo(
    session: AsyncSession,
    principal: Principal,
    appraisal_id: uuid.UUID,
    item_id: uuid.UUID,
    stored: StoredObject,
    classification: dict[str, Any] | None,
) -> Evidence:
    appraisal = await get_appraisal(session, principal, appraisal_id, for_update=True)
    item = await get_item(session, appraisal, item_id)
    if appraisal.status in (AppraisalStatus.APPROVED, AppraisalStatus.REJECTED):
        raise IllegalTransition("A decided appraisal's evidence cannot change")
    if classification is not None:
        item.classification = classification
    return await add_evidence(
        session, principal, appraisal, stored, EvidenceKind.ITEM_PHOTO, item_id=item.id
    )


async def evidence_of(session: AsyncSession, appraisal: Appraisal) -> Sequence[Evidence]:
    return await repository.evidence_of(session, appraisal.org_id, appraisal.id)


# --- purity overrides ----------------------------------------------------------------------


async def latest_completed_test(session: AsyncSession, item: Item) -> PurityTest | None:
    tests = await repository.tests_of_item(session, item.org_id, item.id)
    return next((t for t in tests if t.status == PurityTestStatus.COMPLETED), None)


async def override_purity(
    session: AsyncSession,
    principal: Principal,
    appraisal_id: uuid.UUID,
    item_id: uuid.UUID,
    data: OverrideCreate,
) -> PurityOverride:
    """The appraiser's correction of a test's reading; needs a reason and is audited."""
    appraisal = await get_appraisal(session, principal, appraisal_id, for_update=True)
    item = await get_item(session, appraisal, item_id)
    test = await latest_completed_test(session, item)
    if test is None:
        raise NoPurityTest("Run a purity test on this item before recording its purity")
    if appraisal.status not in (AppraisalStatus.PURITY_COMPLETED, AppraisalStatus.VALUED):
        raise IllegalTransition(
            f"Purity can be overridden once every item is tested, not in '{appraisal.status}'"
        )
    override = PurityOverride(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        item_id=item.id,
        purity_test_id=test.id,
        previous_karat=item.karat,
        karat=data.karat,
        reason=data.reason,
        actor_id=principal.id,
    )
    session.add(override)
    item.karat = data.karat
    item.purity_confidence = None
    if appraisal.status == AppraisalStatus.VALUED:  # the valuation no longer holds
        move(appraisal, AppraisalStatus.PURITY_COMPLETED)
        appraisal.valuation = None
    await session.flush()
    await record(
        session,
        principal,
        appraisal,
        "appraisal.purity_overridden",
        {
            "item_id": str(item.id),
            "purity_test_id": str(test.id),
            "from": override.previous_karat,
            "to": data.karat,
            "reason": data.reason,
        },
        topic="appraisal.purity_overridden",
    )
    return override


# --- valuation and decisions -----------------------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def valuation_json(valuation: Valuation, rates: GoldRates, policy: LendingPolicy) -> dict[str, Any]:
    return {
        "items": [
            {
                "item_id": item.item_id,
                "item_type": item.item_type,
                "count": item.count,
                "gross_weight_g": str(item.gross_weight_g),
                "deduction_g": str(item.deduction_g),
                "net_weight_g": str(item.net_weight_g),
                "karat": item.karat,
                "rate_per_g": _money(item.rate_per_g),
                "value": str(item.value),
                "accepted": item.accepted,
                "flags": list(item.flags),
            }
            for item in valuation.items
        ],
        "total_gross_weight_g": str(valuation.total_gross_weight_g),
        "total_net_weight_g": str(valuation.total_net_weight_g),
        "total_value": str(valuation.total_value),
        "eligible_value": str(valuation.eligible_value),
        "ltv_cap": str(valuation.ltv_cap),
        "eligible_max_loan": str(valuation.eligible_max_loan),
        "requested_amount": _money(valuation.requested_amount),
        "all_checks_passed": valuation.all_checks_passed,
        "checks": [
            {"rule": c.rule, "passed": c.passed, "detail": c.detail} for c in valuation.checks
        ],
        "gold_rates": {
            "per_gram_24k": str(rates.per_gram_24k),
            "per_karat": {k: str(v) for k, v in rates.per_karat.items()},
        },
        "policy": policy.to_mapping(),
        "valued_at": utcnow().isoformat(),
    }


def for_valuation(items: Sequence[Item]) -> list[ItemForValuation]:
    return [
        ItemForValuation(
            item_id=str(item.id),
            item_type=item.item_type,
            count=item.count,
            gross_weight_g=item.gross_weight_g,
            deduction_g=item.deduction_g,
            karat=item.karat,
        )
        for item in items
    ]


async def value_appraisal(
    session: AsyncSession,
    principal: Principal,
    appraisal_id: uuid.UUID,
    requested_amount: Decimal | None,
) -> Appraisal:
    """Value every item at the org's current rates and check the lending rules."""
    appraisal = await get_appraisal(session, principal, appraisal_id, for_update=True)
    if appraisal.status not in (AppraisalStatus.PURITY_COMPLETED, AppraisalStatus.VALUED):
        raise IllegalTransition(
            f"An appraisal is valued after its purity tests, not in '{appraisal.status}'"
        )
    settings = await org_settings.org_settings(session, principal.org_id)
    rates = await org_settings.gold_rates_at(session, principal.org_id, utcnow())
    policy = org_settings.lending_policy(settings)
    if requested_amount is not None:
        appraisal.requested_amount = requested_amount
    try:
        valuation = assess(
            for_valuation(await items_of(session, appraisal)),
            rates,
            policy,
            appraisal.requested_amount,
        )
    except ValueError as error:
        raise InvalidValuation(str(error)) from None
    appraisal.valuation = valuation_json(valuation, rates, policy)
    move(appraisal, AppraisalStatus.VALUED)
    await session.flush()
    await record(
        session,
        principal,
        appraisal,
        "appraisal.valued",
        {
            "total_value": str(valuation.total_value),
            "eligible_max_loan": str(valuation.eligible_max_loan),
            "all_checks_passed": valuation.all_checks_passed,
        },
        topic="appraisal.valued",
    )
    return appraisal


async def decide(
    session: AsyncSession,
    principal: Principal,
    appraisal_id: uuid.UUID,
    *,
    approve: bool,
    comment: str,
) -> Appraisal:
    """Maker-checker: a manager of the appraisal's branch decides; never its appraiser."""
    appraisal = await get_appraisal(session, principal, appraisal_id, for_update=True)
    if principal.id == appraisal.appraiser_id:
        raise OwnAppraisal()
    if principal.branch_id is not None and principal.branch_id != appraisal.branch_id:
        raise BranchMismatch()
    target = AppraisalStatus.APPROVED if approve else AppraisalStatus.REJECTED
    ensure_can_move(appraisal, target)
    valuation = appraisal.valuation or {}
    if approve and not valuation.get("all_checks_passed"):
        raise LendingChecksFailed()
    move(appraisal, target)
    appraisal.decided_by = principal.id
    appraisal.decided_by_name = await _name_of(session, principal)
    appraisal.decided_at = utcnow()
    appraisal.decision_comment = comment
    await session.flush()
    await record(
        session,
        principal,
        appraisal,
        f"appraisal.{target.value}",
        {"comment": comment, "role": principal.role},
        topic=f"appraisal.{target.value}",
    )
    return appraisal


# --- reads (`core.reads`): one round trip each ----------------------------------------------


async def list_appraisals(
    read: TenantRead, page: PageParams, status: AppraisalStatus | None
) -> tuple[Items, int]:
    """The appraisals the caller sees (a branch-bound caller: its branch's)."""
    value = None if status is None else status.value
    return await repository.APPRAISAL_PAGES.read(read, page, {"status": value}, by_branch=True)


async def read_with_appraisal(
    read: TenantRead,
    appraisal_id: uuid.UUID,
    *parts: ItemQuery,
    head: BranchScoped = repository.APPRAISAL_VISIBLE,
) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    """The appraisal as `head` reads it and, in the same transaction, the rows of each of
    `parts` (queries on what belongs to appraisal `id`); `AppraisalNotFound` when the caller
    may not see the appraisal (another bank's or, for a branch-bound caller, another
    branch's), whatever the parts found."""

    def plan(principal: Principal) -> Statements:
        query, values = head.bound(principal, {"id": appraisal_id})
        return [(query.query, values), *((part.query, values) for part in parts)]

    found, *rows = await read.fetch(plan)
    if not found:
        raise AppraisalNotFound()
    return head.everywhere.items(found)[0], [
        part.items(part_rows) for part, part_rows in zip(parts, rows, strict=True)
    ]


async def read_appraisal(read: TenantRead, appraisal_id: uuid.UUID) -> AppraisalDetail:
    appraisal, (items,) = await read_with_appraisal(
        read, appraisal_id, repository.ITEMS, head=repository.APPRAISAL_DETAIL
    )
    return AppraisalDetail.model_validate({**appraisal, "items": items})


async def read_evidence(read: TenantRead, appraisal_id: uuid.UUID) -> list[dict[str, Any]]:
    """The appraisal's evidence, oldest first, each with its `storage_key`."""
    _, (evidence,) = await read_with_appraisal(read, appraisal_id, repository.EVIDENCE)
    return evidence


async def read_chain(read: TenantRead, appraisal_id: uuid.UUID) -> list[dict[str, Any]]:
    _, (events,) = await read_with_appraisal(read, appraisal_id, repository.CHAIN)
    return events


async def verify_chain(read: TenantRead, appraisal_id: uuid.UUID) -> chain.Verification:
    """Read in one round trip; the time goes into recomputing one SHA-256 (over the
    event's canonical JSON) per event, linear in the chain's length."""
    return chain.verify([chain.ChainRow(**event) for event in await read_chain(read, appraisal_id)])


DEMO_RATE_24K_PER_G = Decimal("7000.00")


async def load_demo_rates(database: Database, org_id: uuid.UUID) -> None:
    """A 24K gold rate for the demo bank, so a demo appraisal can be valued at once."""
    async with database.transaction(org_id=org_id) as session:
        await org_settings.set_gold_rate(
            session,
            system_principal(org_id),
            GoldRateCreate(karat="24K", rate_per_g=DEMO_RATE_24K_PER_G),
        )
