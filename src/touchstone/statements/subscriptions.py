"""Who may change what an org pays for, and how (issue 13, §5).

A tenant used to `PUT /billing/customer {"customer_id", "plan"}`: any plan it liked (the
row was `active` by default) and any Stripe customer id, the first claimant of which got
that customer's webhooks. Now the plan and its status come only from

- the provider's signed webhooks, for the customer linked to the org;
- a platform administrator (API or CLI), audited in the org's own trail.

And the customer is linked only by the platform: created at the provider for the org (the
tenant may ask for that; the org id goes into the customer's metadata), or named by a
platform administrator after the provider confirms it exists and bills no other org. An
org without a row is on the default plan with the default quota.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from types import EllipsisType
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

import touchstone.identity.service as identity
from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal, system_principal
from touchstone.core.config import Settings
from touchstone.core.db import Database, enter_tenant, unique_changes
from touchstone.core.errors import Conflict, InvalidInput, NotFound
from touchstone.statements.engines.billing import BillingEngine, billing_engine
from touchstone.statements.models import NO_SUBSCRIPTION, BillingEvent, Subscription

PROVIDER_STATUSES = frozenset(
    {
        "active",
        "trialing",
        "past_due",
        "canceled",
        "unpaid",
        "incomplete",
        "incomplete_expired",
        "paused",
    }
)
"""Stripe's subscription statuses; only `active` and `trialing` put the plan in force."""
STATUSES = PROVIDER_STATUSES | {NO_SUBSCRIPTION}
CUSTOMER_TAKEN = "This billing customer is already linked to an organization"


class CustomerAlreadyLinked(Conflict):
    code, title = "customer_already_linked", "The organization already has a billing customer"


async def _subscription(session: AsyncSession, org_id: uuid.UUID) -> Subscription | None:
    query = select(Subscription).where(Subscription.org_id == org_id).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


def _new_subscription(org_id: uuid.UUID) -> Subscription:
    """The default plan; no provider subscription yet, so nothing beyond the default."""
    return Subscription(id=uuid.uuid4(), org_id=org_id, plan="free", status=NO_SUBSCRIPTION)


# --- the tenant's one request: "bill us" ------------------------------------------------


async def create_customer(
    session: AsyncSession, principal: Principal, billing: BillingEngine
) -> Subscription:
    """Create the org's customer at the provider and link it; the plan stays as it is until
    the provider reports a subscription. A second request is a 409, whatever it names."""
    subscription = await _subscription(session, principal.org_id)
    if subscription is not None and subscription.external_customer_id is not None:
        raise CustomerAlreadyLinked("Billing is already set up; a platform admin can change it")
    org = await identity.get_org(session, principal)
    customer_id = await billing.create_customer(org_id=principal.org_id, name=org.name)
    async with unique_changes(session, CUSTOMER_TAKEN):
        if subscription is None:
            subscription = _new_subscription(principal.org_id)
            session.add(subscription)
        subscription.external_customer_id = customer_id
        subscription.updated_at = dt.datetime.now(dt.UTC)
    await record_audit(
        session,
        principal,
        "billing.customer_created",
        "subscription",
        subscription.id,
        {"customer_id": customer_id, "provider": billing.name},
    )
    return subscription


# --- the platform ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BillingChange:
    """What a platform administrator sets; fields left out (`...`) stay as they are."""

    reason: str
    customer_id: str | EllipsisType | None = ...
    """A provider customer id, or None to unlink the org from its customer."""
    plan: str | EllipsisType = ...
    status: str | EllipsisType = ...


async def change_by_platform(
    session: AsyncSession,
    actor: Principal,
    org_id: uuid.UUID,
    change: BillingChange,
    settings: Settings,
    billing: BillingEngine,
) -> Subscription:
    """A platform administrator's change to any org's billing, audited in that org.

    Works inside the org's tenant and goes back to the caller's afterwards. A customer id
    is checked with the provider first: it must exist and bill no other org; it is then
    tagged with this org.
    """
    if isinstance(change.plan, str) and change.plan not in settings.statements_plan_quotas:
        raise InvalidInput(f"Unknown plan; choose one of {sorted(settings.statements_plan_quotas)}")
    if isinstance(change.status, str) and change.status not in STATUSES:
        raise InvalidInput(f"Unknown status; choose one of {sorted(STATUSES)}")
    caller_org = session.info.get("org_id")
    await enter_tenant(session, org_id)
    try:
        await identity.get_org(session, system_principal(org_id))  # 404 for no such org
        subscription = await _subscription(session, org_id)
        if subscription is None:
            subscription = _new_subscription(org_id)
            session.add(subscription)
        before = _summary(subscription)
        async with unique_changes(session, CUSTOMER_TAKEN):
            if not isinstance(change.customer_id, EllipsisType):
                subscription.external_customer_id = change.customer_id
                subscription.external_subscription_id = None
            if isinstance(change.plan, str):
                subscription.plan = change.plan
            if isinstance(change.status, str):
                subscription.status = change.status
            subscription.updated_at = dt.datetime.now(dt.UTC)
        if isinstance(change.customer_id, str) and before["customer_id"] != change.customer_id:
            await billing.claim_customer(change.customer_id, org_id)
        await record_audit(
            session,
            actor,
            "billing.changed_by_platform",
            "subscription",
            subscription.id,
            {"before": before, "after": _summary(subscription), "reason": change.reason},
            org_id=org_id,
        )
        await session.flush()
    finally:
        if caller_org is not None and caller_org != org_id:
            await enter_tenant(session, caller_org)
    return subscription


async def change_by_operator(
    database: Database, settings: Settings, org_slug: str, change: BillingChange
) -> Subscription:
    """`touchstone billing set`: the same change from a shell, audited as the platform."""
    async with database.transaction() as session:
        org_id = (
            await session.execute(text("select org_id_by_slug(:s)"), {"s": org_slug})
        ).scalar_one_or_none()
        if org_id is None:
            raise NotFound(f"No organization with slug '{org_slug}'")
        actor = system_principal(org_id, frozenset({"platform:billing"}))
        return await change_by_platform(
            session, actor, org_id, change, settings, billing_engine(settings)
        )


def _summary(subscription: Subscription) -> dict[str, Any]:
    return {
        "customer_id": subscription.external_customer_id,
        "plan": subscription.plan,
        "status": subscription.status,
    }


# --- the provider ----------------------------------------------------------------------

_SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)


async def apply_billing_event(
    session: AsyncSession, settings: Settings, event_id: str, event_type: str, data: dict[str, Any]
) -> bool:
    """Apply a verified provider event once; returns False for a replay or an unknown customer."""
    if event_type not in _SUBSCRIPTION_EVENTS:
        return False
    customer = data.get("customer")
    if not isinstance(customer, str):
        return False
    org_id = (
        await session.execute(text("select billing_org_by_customer(:c)"), {"c": customer})
    ).scalar_one_or_none()
    if org_id is None:
        return False
    await enter_tenant(session, org_id)
    claimed = await session.execute(
        insert(BillingEvent)
        .values(id=event_id, org_id=org_id, type=event_type)
        .on_conflict_do_nothing()
        .returning(BillingEvent.id)
    )
    if claimed.scalar_one_or_none() is None:
        return False
    subscription = await _subscription(session, org_id)
    assert subscription is not None, "billing_org_by_customer found its row"
    status = "canceled" if event_type.endswith("deleted") else data.get("status")
    subscription.external_subscription_id = data.get("id")
    if status in PROVIDER_STATUSES:
        subscription.status = str(status)
    subscription.plan = _plan_of(settings, data) or subscription.plan
    period_end = data.get("current_period_end")
    if isinstance(period_end, int):
        subscription.current_period_end = dt.datetime.fromtimestamp(period_end, dt.UTC)
    subscription.updated_at = dt.datetime.now(dt.UTC)
    await record_audit(
        session,
        None,
        "billing.subscription_changed",
        "subscription",
        subscription.id,
        {"event": event_id, "plan": subscription.plan, "status": subscription.status},
        org_id=org_id,
    )
    return True


def _plan_of(settings: Settings, subscription: dict[str, Any]) -> str | None:
    """The plan from the subscription's metadata, else from its price (id or lookup key).

    Both are the platform's: it creates the subscription (with its metadata) and names the
    prices; a customer cannot edit a subscription's metadata."""
    metadata = subscription.get("metadata") or {}
    if isinstance(metadata, dict) and isinstance(metadata.get("plan"), str):
        plan: str = metadata["plan"]
        return plan if plan in settings.statements_plan_quotas else None
    items = (subscription.get("items") or {}).get("data") or []
    for item in items:
        price = item.get("price") or {}
        for ref in (price.get("lookup_key"), price.get("id")):
            if ref in settings.stripe_plans_by_price:
                return settings.stripe_plans_by_price[ref]
    return None
