"""Webhook queries. Each filters by org explicitly even though RLS would too."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import BindParameter, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.reads import ItemQuery, columns_for, compile_query, item_query
from touchstone.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from touchstone.webhooks.schemas import AttemptOut, DeliveryOut, WebhookOut


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


# --- reads (`core.reads`): compiled once, bound per request ---------------------------------
# Each selects exactly its response model's fields: the signing secret is never read here.

_ORG: BindParameter[uuid.UUID] = bindparam("org_id")
_ID: BindParameter[uuid.UUID] = bindparam("id")
_WEBHOOK: BindParameter[uuid.UUID] = bindparam("webhook_id")

WEBHOOK = item_query(
    select(*columns_for(WebhookOut, WebhookEndpoint)).where(
        WebhookEndpoint.org_id == _ORG, WebhookEndpoint.id == _ID
    ),
    WebhookOut,
)
WEBHOOK_EXISTS = compile_query(
    select(WebhookEndpoint.id).where(WebhookEndpoint.org_id == _ORG, WebhookEndpoint.id == _WEBHOOK)
)
"""A row when the caller's org has the webhook: what a delivery list answers 404 without."""

_DELIVERY_COLUMNS = [*columns_for(DeliveryOut, WebhookDelivery), WebhookDelivery.payload]
DELIVERY = ItemQuery(
    compile_query(
        select(*_DELIVERY_COLUMNS).where(
            WebhookDelivery.org_id == _ORG,
            WebhookDelivery.endpoint_id == _WEBHOOK,
            WebhookDelivery.id == _ID,
        )
    ),
    tuple(column.key for column in _DELIVERY_COLUMNS),
)
"""A delivery of the webhook, with its body (`DeliveryDetail` without the attempt log)."""
ATTEMPTS = item_query(
    select(*columns_for(AttemptOut, WebhookDeliveryAttempt))
    .join(WebhookDelivery, WebhookDelivery.id == WebhookDeliveryAttempt.delivery_id)
    .where(
        WebhookDeliveryAttempt.org_id == _ORG,
        WebhookDeliveryAttempt.delivery_id == _ID,
        WebhookDelivery.endpoint_id == _WEBHOOK,
    )
    .order_by(WebhookDeliveryAttempt.number),
    AttemptOut,
)
"""The attempt log of a delivery of the webhook, oldest first."""
