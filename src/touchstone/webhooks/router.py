"""Webhooks HTTP API: parse, authorize, call the service, shape the response."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Response

from touchstone.core.auth import Principal
from touchstone.core.deps import SessionDep, SettingsDep, require
from touchstone.core.idempotency import IdempotencyDep
from touchstone.core.pagination import Page, PageDep, page_response
from touchstone.core.reads import TenantRead, tenant_read
from touchstone.core.routing import ApiRouter
from touchstone.webhooks import service
from touchstone.webhooks.dependencies import TargetPolicyDep
from touchstone.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from touchstone.webhooks.schemas import (
    DeliveryDetail,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)

router = ApiRouter(prefix="/webhooks", tags=["webhooks"])
Reads = Annotated[TenantRead, Depends(tenant_read("webhooks:read"))]
Writer = Annotated[Principal, Depends(require("webhooks:write"))]
WEBHOOKS_PATH = "/api/v1/webhooks"


@router.get("", response_model=Page[WebhookOut])
async def list_webhooks(read: Reads, page: PageDep) -> Response:
    items, total = await service.list_endpoints(read, page)
    return page_response(items, total, page)


@router.post("", response_model=WebhookCreated, status_code=201)
async def create_webhook(
    body: WebhookCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    policy: TargetPolicyDep,
    principal: Writer,
) -> WebhookCreated:
    """Register a receiver. The response carries the signing secret, shown this once only."""
    endpoint, secret = await service.create_endpoint(session, principal, body, settings, policy)
    response.headers["Location"] = f"{WEBHOOKS_PATH}/{endpoint.id}"
    return _created(endpoint, secret)


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: uuid.UUID, read: Reads) -> WebhookOut:
    return WebhookOut.model_validate(await service.read_endpoint(read, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookOut)
async def update_webhook(
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    session: SessionDep,
    policy: TargetPolicyDep,
    principal: Writer,
) -> WebhookOut:
    """Change the URL (checked again), description, topics, or `is_active`."""
    endpoint = await service.update_endpoint(session, principal, webhook_id, body, policy)
    return WebhookOut.model_validate(endpoint)


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: uuid.UUID, session: SessionDep, principal: Writer) -> None:
    """Remove the webhook and its delivery log."""
    await service.delete_endpoint(session, principal, webhook_id)


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookCreated)
async def rotate_webhook_secret(
    webhook_id: uuid.UUID, session: SessionDep, settings: SettingsDep, principal: Writer
) -> WebhookCreated:
    """Replace the signing secret; the new one is returned this once only."""
    endpoint, secret = await service.rotate_secret(session, principal, webhook_id, settings)
    return _created(endpoint, secret)


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryOut])
async def list_deliveries(
    webhook_id: uuid.UUID,
    read: Reads,
    page: PageDep,
    status: DeliveryStatus | None = None,
    event_id: uuid.UUID | None = None,
) -> Response:
    items, total = await service.list_deliveries(
        read, webhook_id, page, status=status, event_id=event_id
    )
    return page_response(items, total, page)


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, read: Reads
) -> DeliveryDetail:
    """The delivery with its body and every attempt's outcome."""
    return await service.read_delivery(read, webhook_id, delivery_id)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryDetail,
    status_code=202,
)
async def redeliver(
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    response: Response,
    session: SessionDep,
    principal: Writer,
) -> DeliveryDetail:
    """Send the same event (same id, same body) again as a new delivery, now."""
    delivery = await service.redeliver(session, principal, webhook_id, delivery_id)
    response.headers["Location"] = f"{WEBHOOKS_PATH}/{webhook_id}/deliveries/{delivery.id}"
    return _detail(delivery)


@router.post("/{webhook_id}/ping", response_model=DeliveryDetail, status_code=202)
async def ping_webhook(
    webhook_id: uuid.UUID,
    response: Response,
    session: SessionDep,
    idempotency: IdempotencyDep,
    principal: Writer,
) -> DeliveryDetail:
    """Send a signed `webhook.ping` test event to this webhook now, whatever its topics,
    through the usual delivery (job, signature, retries, delivery log). With an
    `Idempotency-Key`, a retried request sends one ping and answers the same delivery."""
    delivery = await service.ping(session, principal, webhook_id)
    location = f"{WEBHOOKS_PATH}/{webhook_id}/deliveries/{delivery.id}"
    response.headers["Location"] = location
    return idempotency.remember(_detail(delivery), 202, {"Location": location})


def _detail(delivery: WebhookDelivery) -> DeliveryDetail:
    """A delivery just made: nothing attempted yet."""
    out = DeliveryOut.model_validate(delivery)
    return DeliveryDetail(**out.model_dump(), payload=delivery.payload, attempt_log=[])


def _created(endpoint: WebhookEndpoint, secret: str) -> WebhookCreated:
    return WebhookCreated(**WebhookOut.model_validate(endpoint).model_dump(), secret=secret)
