"""Webhook use cases: endpoints, the delivery log, redelivery, and the outbox consumer.

Other modules import this file only. Functions flush, never commit; every state change an
admin makes is audited in the same transaction. Deliveries themselves are not audited: the
delivery log is their record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal, system_principal
from touchstone.core.config import Settings
from touchstone.core.events.hub import LiveEvent, topic_matches
from touchstone.core.jobs import defer
from touchstone.core.pagination import (
    Items,
    PageParams,
    PageQueries,
    PageShape,
)
from touchstone.core.reads import (
    ItemQuery,
    Statements,
    TenantRead,
    columns_for,
    read_item,
)
from touchstone.webhooks import repository
from touchstone.webhooks.exceptions import DeliveryNotFound, EndpointDisabled, WebhookNotFound
from touchstone.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from touchstone.webhooks.schemas import (
    DeliveryDetail,
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
)
from touchstone.webhooks.secret_store import encrypt_secret
from touchstone.webhooks.signing import SignatureError, new_secret, verify_signature
from touchstone.webhooks.targets import TargetPolicy
from touchstone.webhooks.tasks import deliver_webhook

__all__ = ["SignatureError", "on_events", "verify_signature"]


# --- endpoints -------------------------------------------------------------------------


_WEBHOOK_PAGES = PageShape(
    select(*columns_for(WebhookOut, WebhookEndpoint)).where(
        WebhookEndpoint.org_id == bindparam("org_id")
    ),
    {},
    {"created_at": WebhookEndpoint.created_at, "url": WebhookEndpoint.url},
    "-created_at",
    WebhookEndpoint.id,
    item=WebhookOut,
)


async def list_endpoints(read: TenantRead, page: PageParams) -> tuple[Items, int]:
    """The org's webhooks (`WebhookOut`'s fields only: never the secret)."""

    return await _WEBHOOK_PAGES.read(read, page)


async def read_endpoint(read: TenantRead, endpoint_id: uuid.UUID) -> dict[str, Any]:
    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        return repository.WEBHOOK, {"org_id": principal.org_id, "id": endpoint_id}

    return await read_item(read, plan, WebhookNotFound())


async def get_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint:
    endpoint = await repository.get_endpoint(
        session, principal.org_id, endpoint_id, for_update=for_update
    )
    if endpoint is None:
        raise WebhookNotFound()
    return endpoint


async def create_endpoint(
    session: AsyncSession,
    principal: Principal,
    data: WebhookCreate,
    settings: Settings,
    policy: TargetPolicy,
) -> tuple[WebhookEndpoint, str]:
    """Returns the endpoint and its signing secret, which is shown this once only."""
    await policy.vet(data.url)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        url=data.url,
        description=data.description,
        topics=data.topics,
        secret_encrypted=encrypt_secret(settings, secret),
        is_active=data.is_active,
        created_by=principal.id,
    )
    session.add(endpoint)
    await session.flush()
    await record_audit(
        session,
        principal,
        "webhook.created",
        "webhook",
        endpoint.id,
        {"url": data.url, "topics": data.topics, "is_active": data.is_active},
    )
    return endpoint, secret


async def update_endpoint(
    session: AsyncSession,
    principal: Principal,
    endpoint_id: uuid.UUID,
    data: WebhookUpdate,
    policy: TargetPolicy,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, principal, endpoint_id, for_update=True)
    values = data.model_dump(exclude_unset=True)
    if "url" in values and values["url"] != endpoint.url:
        await policy.vet(values["url"])
    changes: dict[str, Any] = {}
    for field, value in values.items():
        before = getattr(endpoint, field)
        if before != value:
            setattr(endpoint, field, value)
            changes[field] = [before, value]
    if changes:
        await record_audit(session, principal, "webhook.updated", "webhook", endpoint.id, changes)
    return endpoint


async def delete_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID
) -> None:
    """Deletes its deliveries too; their pending jobs find nothing and end quietly."""
    endpoint = await get_endpoint(session, principal, endpoint_id, for_update=True)
    await session.delete(endpoint)
    await session.flush()
    await record_audit(
        session, principal, "webhook.deleted", "webhook", endpoint_id, {"url": endpoint.url}
    )


async def rotate_secret(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, settings: Settings
) -> tuple[WebhookEndpoint, str]:
    """A new secret takes effect at once (attempts from now on are signed with it)."""
    endpoint = await get_endpoint(session, principal, endpoint_id, for_update=True)
    secret = new_secret()
    endpoint.secret_encrypted = encrypt_secret(settings, secret)
    await record_audit(session, principal, "webhook.secret_rotated", "webhook", endpoint.id)
    return endpoint, secret


# --- deliveries ------------------------------------------------------------------------


_DELIVERY_PAGES = PageShape(
    select(*columns_for(DeliveryOut, WebhookDelivery)).where(
        WebhookDelivery.org_id == bindparam("org_id")
    ),
    {
        "webhook_id": lambda webhook: WebhookDelivery.endpoint_id == webhook,  # always given
        "status": lambda status: WebhookDelivery.status == status,
        "event_id": lambda event: WebhookDelivery.event_id == event,
    },
    {"created_at": WebhookDelivery.created_at, "event_seq": WebhookDelivery.event_seq},
    "-created_at",
    WebhookDelivery.id,
    item=DeliveryOut,
)


async def list_deliveries(
    read: TenantRead,
    endpoint_id: uuid.UUID,
    page: PageParams,
    *,
    status: DeliveryStatus | None = None,
    event_id: uuid.UUID | None = None,
) -> tuple[Items, int]:
    """A page of the webhook's delivery log; `WebhookNotFound` when the caller's org has no
    such webhook (checked in the same round trip as the page)."""
    exists = {"webhook_id": endpoint_id}
    filters = {
        **exists,
        "status": status.value if status is not None else None,
        "event_id": event_id,
    }
    planned: list[PageQueries] = []  # the last one is the plan whose rows were kept

    def plan(principal: Principal) -> Statements:
        org = {"org_id": principal.org_id}
        queries, values = _DELIVERY_PAGES.plan({**org, **filters}, page.sort)
        planned.append(queries)
        exists_query = (repository.WEBHOOK_EXISTS, {**org, **exists})
        return [exists_query, *queries.statements(values, page)]

    found, *listed = await read.fetch(plan)
    if not found:
        raise WebhookNotFound()
    items, total = planned[-1].items(listed)
    assert total is not None  # a plain list counts in a statement of its own
    return items, total


async def read_delivery(
    read: TenantRead, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryDetail:
    """The webhook's delivery with its attempt log, oldest attempt first, in one round trip;
    `DeliveryNotFound` for a delivery of another webhook or another org."""

    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "webhook_id": endpoint_id, "id": delivery_id}
        return [(repository.DELIVERY.query, values), (repository.ATTEMPTS.query, values)]

    delivery, attempts = await read.fetch(plan)
    if not delivery:
        raise DeliveryNotFound()
    (item,) = repository.DELIVERY.items(delivery)
    return DeliveryDetail.model_validate(
        {**item, "attempt_log": repository.ATTEMPTS.items(attempts)}
    )


async def get_delivery(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    delivery = await repository.get_delivery(session, principal.org_id, endpoint_id, delivery_id)
    if delivery is None:
        raise DeliveryNotFound()
    return delivery


async def redeliver(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """A new delivery of the same event (same event id, same body), sent now."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    original = await get_delivery(session, principal, endpoint_id, delivery_id)
    if not endpoint.is_active:
        raise EndpointDisabled("Enable the webhook before redelivering to it")
    delivery = _new_delivery(
        endpoint,
        event_id=original.event_id,
        event_seq=original.event_seq,
        topic=original.topic,
        payload=original.payload,
        redelivery_of=original.id,
    )
    session.add(delivery)
    await defer(session, principal, deliver_webhook, delivery_id=str(delivery.id))
    await record_audit(
        session,
        principal,
        "webhook.redelivered",
        "webhook_delivery",
        delivery.id,
        {"webhook_id": str(endpoint.id), "redelivery_of": str(original.id)},
    )
    return delivery


PING_TOPIC = "webhook.ping"


async def ping(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID
) -> WebhookDelivery:
    """A `webhook.ping` event for this endpoint alone, whatever its topics, sent like any
    other (signed, by a job, retried, in the delivery log), so a receiver can be tried
    without waiting for real events. Pings are not in the event stream: their `id` is 0."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    if not endpoint.is_active:
        raise EndpointDisabled("Enable the webhook before pinging it")
    event = LiveEvent(
        seq=0,
        event_id=str(uuid.uuid4()),
        org_id=principal.org_id,
        topic=PING_TOPIC,
        aggregate_type="webhook",
        aggregate_id=str(endpoint.id),
        payload={"webhook_id": str(endpoint.id), "url": endpoint.url},
        created_at=datetime.now(UTC).isoformat(),
    )
    delivery = _new_delivery(
        endpoint,
        event_id=uuid.UUID(event.event_id),
        event_seq=event.seq,
        topic=event.topic,
        payload=event_body(principal.org_id, event),
    )
    session.add(delivery)
    await defer(session, principal, deliver_webhook, delivery_id=str(delivery.id))
    await record_audit(
        session,
        principal,
        "webhook.pinged",
        "webhook_delivery",
        delivery.id,
        {"webhook_id": str(endpoint.id)},
    )
    return delivery


def _new_delivery(
    endpoint: WebhookEndpoint,
    *,
    event_id: uuid.UUID,
    event_seq: int,
    topic: str,
    payload: str,
    redelivery_of: uuid.UUID | None = None,
) -> WebhookDelivery:
    return WebhookDelivery(
        id=uuid.uuid4(),
        org_id=endpoint.org_id,
        endpoint_id=endpoint.id,
        event_id=event_id,
        event_seq=event_seq,
        topic=topic,
        payload=payload,
        status=DeliveryStatus.PENDING,
        attempts=0,
        redelivery_of=redelivery_of,
    )


# --- the outbox consumer ---------------------------------------------------------------


def event_body(org_id: uuid.UUID, event: LiveEvent) -> str:
    """What receivers get: the live streams' event body plus the org, as compact JSON."""
    return json.dumps(event.body() | {"org_id": str(org_id)}, separators=(",", ":"))


async def on_events(session: AsyncSession, org_id: uuid.UUID, events: Sequence[LiveEvent]) -> None:
    """The relay's consumer: a delivery (and its job) per matching active endpoint.

    Runs in the relay's transaction, so a delivery exists if and only if the event was
    numbered. One query for the org's endpoints per batch.
    """
    endpoints = await repository.active_endpoints(session, org_id)
    if not endpoints:
        return
    principal = system_principal(org_id)
    for event in events:
        body: str | None = None
        for endpoint in endpoints:
            if not topic_matches(frozenset(endpoint.topics), event.topic):
                continue
            body = body or event_body(org_id, event)
            delivery = _new_delivery(
                endpoint,
                event_id=uuid.UUID(event.event_id),
                event_seq=event.seq,
                topic=event.topic,
                payload=body,
            )
            session.add(delivery)
            await defer(session, principal, deliver_webhook, delivery_id=str(delivery.id))
