"""`POST /webhooks/{id}/ping`: a signed `webhook.ping` through the usual delivery path."""

from __future__ import annotations

import json
import uuid

import httpx
from sqlalchemy import func, select
from tests.conftest import Tenant, add_member, assert_problem
from tests.webhooks.conftest import (
    API,
    Deliver,
    Receiver,
    deliveries,
    delivery_detail,
    register,
)
from tests.webhooks.test_api import HOOK
from tests.webhooks.test_delivery import _assert_signed

from touchstone.core.db import Database
from touchstone.core.permissions import Role
from touchstone.webhooks.models import WebhookDelivery


async def ping(
    client: httpx.AsyncClient, tenant: Tenant, webhook_id: str, key: str | None = None
) -> httpx.Response:
    headers = tenant.headers | ({"Idempotency-Key": key} if key else {})
    return await client.post(f"{API}/webhooks/{webhook_id}/ping", headers=headers)


async def test_a_ping_reaches_the_receiver_signed_whatever_the_topics(
    webhook_client: httpx.AsyncClient,
    receiver: Receiver,
    tenant: Tenant,
    deliver: Deliver,
) -> None:
    webhook = await register(webhook_client, tenant, receiver.url("/hook"), ["batch.*"])
    response = await ping(webhook_client, tenant, webhook["id"])
    assert response.status_code == 202, response.text
    queued = response.json()
    assert response.headers["location"] == (
        f"{API}/webhooks/{webhook['id']}/deliveries/{queued['id']}"
    )
    assert (queued["topic"], queued["status"], queued["event_seq"]) == (
        "webhook.ping",
        "pending",
        0,
    )
    await deliver()

    (request,) = receiver.requests
    body = _assert_signed(request, webhook["secret"])
    assert body == queued["payload"]
    assert (body["id"], body["topic"], body["org_id"]) == (0, "webhook.ping", str(tenant.org_id))
    assert body["aggregate"] == {"type": "webhook", "id": webhook["id"]}
    assert body["data"] == {"webhook_id": webhook["id"], "url": receiver.url("/hook")}
    assert request.headers["touchstone-delivery-id"] == queued["id"]
    detail = await delivery_detail(webhook_client, tenant, webhook["id"], queued["id"])
    assert (detail["status"], detail["attempts"]) == ("succeeded", 1)
    assert [(a["number"], a["status_code"]) for a in detail["attempt_log"]] == [(1, 200)]


async def test_a_ping_the_receiver_refuses_is_retried_and_logged(
    webhook_client: httpx.AsyncClient,
    receiver: Receiver,
    tenant: Tenant,
    deliver: Deliver,
) -> None:
    receiver.script("/hook", (500, {}, b"not yet"))
    webhook = await register(webhook_client, tenant, receiver.url("/hook"))
    queued = (await ping(webhook_client, tenant, webhook["id"])).json()
    await deliver()

    assert len(receiver.requests) == 2
    assert len({r.body for r in receiver.requests}) == 1  # the same signed bytes again
    detail = await delivery_detail(webhook_client, tenant, webhook["id"], queued["id"])
    log = [(a["number"], a["status_code"], a["response_body"]) for a in detail["attempt_log"]]
    assert log == [(1, 500, "not yet"), (2, 200, "ok")]
    assert detail["status"] == "succeeded"


async def test_a_repeated_ping_with_its_idempotency_key_sends_one(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    webhook = await register(client, tenant_a, HOOK)
    key = f"ping-{uuid.uuid4()}"
    first = await ping(client, tenant_a, webhook["id"], key)
    again = await ping(client, tenant_a, webhook["id"], key)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert again.json() == first.json()
    other = await ping(client, tenant_a, webhook["id"], f"ping-{uuid.uuid4()}")
    assert other.json()["id"] != first.json()["id"]
    assert [d["id"] for d in await deliveries(client, tenant_a, webhook["id"])] == [
        other.json()["id"],
        first.json()["id"],
    ]
    async with database.transaction(org_id=tenant_a.org_id) as session:
        count = select(func.count()).select_from(WebhookDelivery)
        assert (await session.execute(count)).scalar_one() == 2


async def test_a_ping_needs_webhooks_write_on_an_active_webhook_of_ones_own_org(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    webhook = await register(client, tenant_a, HOOK)
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    path = f"{API}/webhooks/{webhook['id']}/ping"
    assert_problem(await client.post(path), 401)
    assert_problem(await client.post(path, headers=viewer), 403, "forbidden")
    assert_problem(await ping(client, tenant_b, webhook["id"]), 404, "webhook_not_found")
    assert_problem(await ping(client, tenant_a, str(uuid.uuid4())), 404, "webhook_not_found")
    await client.patch(
        f"{API}/webhooks/{webhook['id']}", headers=tenant_a.headers, json={"is_active": False}
    )
    assert_problem(await ping(client, tenant_a, webhook["id"]), 409, "webhook_disabled")
    assert await deliveries(client, tenant_a, webhook["id"]) == []

    await client.patch(
        f"{API}/webhooks/{webhook['id']}", headers=tenant_a.headers, json={"is_active": True}
    )
    sent = (await ping(client, tenant_a, webhook["id"])).json()
    audit = await client.get(f"{API}/audit-events", headers=tenant_a.headers, params={"limit": 100})
    (pinged,) = [e for e in audit.json()["items"] if e["action"] == "webhook.pinged"]
    assert pinged["object_id"] == sent["id"]
    assert json.dumps(pinged).find("whsec_") == -1
