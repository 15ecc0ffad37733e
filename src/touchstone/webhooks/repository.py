"""Webhook queries. Each filters by org explicitly even though RLS would too."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint


def endpoints_query(org_id: uuid.UUID) -> Select[WebhookEndpoint]:
    return select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id)


async def get_endpoint(
    session: AsyncSession, org_id: uuid.UUID, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint | None:
    query = endpoints_query(org_id).where(WebhookEndpoint.id == endpoint_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def active_endpoints(session: AsyncSession, org_id: uuid.UUID) -> Sequence[WebhookEndpoint]:
    query = endpoints_query(org_id).where(WebhookEndpoint.is_active).order_by(WebhookEndpoint.id)
    return (await session.execute(query)).scalars().all()


def deliveries_query(org_id: uuid.UUID, endpoint_id: uuid.UUID) -> Select[WebhookDelivery]:
    return select(WebhookDelivery).where(
        WebhookDelivery.org_id == org_id, WebhookDelivery.endpoint_id == endpoint_id
    )


async def get_delivery(
    session: AsyncSession, org_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    query = deliveries_query(org_id, endpoint_id).where(WebhookDelivery.id == delivery_id)
    return (await session.execute(query)).scalar_one_or_none()


async def delivery_with_endpoint(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: uuid.UUID, *, for_update: bool = False
) -> tuple[WebhookDelivery, WebhookEndpoint] | None:
    query = (
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.org_id == org_id, WebhookDelivery.id == delivery_id)
    )
    if for_update:
        query = query.with_for_update(of=WebhookDelivery)
    row = (await session.execute(query)).one_or_none()
    return None if row is None else (row[0], row[1])


async def attempts_of(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: uuid.UUID
) -> Sequence[WebhookDeliveryAttempt]:
    query = (
        select(WebhookDeliveryAttempt)
        .where(
            WebhookDeliveryAttempt.org_id == org_id,
            WebhookDeliveryAttempt.delivery_id == delivery_id,
        )
        .order_by(WebhookDeliveryAttempt.number)
    )
    return (await session.execute(query)).scalars().all()
