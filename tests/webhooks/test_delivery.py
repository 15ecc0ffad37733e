"""End to end: outbox event -> relay -> delivery job -> a real receiver on 127.0.0.1.

These tests commit (the relay and the worker use their own connections). Retries are due
at once here (see `delivery_settings`); production waits 3 ** n seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import Tenant
from tests.webhooks.conftest import (
    API,
    Deliver,
    Receiver,
    deliveries,
    delivery_detail,
    emit,
    only_localhost,
    register,
    relay,
)

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.jobs import JobRecord
from touchstone.core.postgres import DatabaseUrls
from touchstone.webhooks import tasks
from touchstone.webhooks.signing import verify_signature

pytestmark = pytest.mark.usefixtures("delivery_settings")


def _assert_signed(request: Any, secret: str) -> dict[str, Any]:
    assert request.headers["content-type"] == "application/json"
    verify_signature(secret, request.headers["touchstone-signature"], request.body)
    timestamp = int(request.headers["touchstone-timestamp"])
    assert abs(time.time() - timestamp) < 60
    assert request.headers["touchstone-signature"].startswith(f"t={timestamp},v1=")
    body: dict[str, Any] = json.loads(request.body)
    assert request.headers["touchstone-event-id"] == body["event_id"]
    assert request.headers["touchstone-event-type"] == body["topic"]
    return body


async def test_an_event_reaches_the_receiver_once_signed_with_its_stable_id(
    webhook_client: httpx.AsyncClient,
    receiver: Receiver,
    committed: Database,
    tenant: Tenant,
    deliver: Deliver,
) -> None:
    webhook = await register(webhook_client, tenant, receiver.url("/hook"), ["batch.*"])
    event_id = await emit(committed, tenant, "batch.done", rows=12)
    await emit(committed, tenant, "invoice.paid", amount=3)  # not subscribed
    await deliver()
    await deliver()  # nothing new: nothing sent twice

    (request,) = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook")
    body = _assert_signed(request, webhook["secret"])
    assert body["event_id"] == event_id
    assert (body["topic"], body["data"]) == ("batch.done", {"rows": 12})
    assert body["aggregate"] == {"type": "batch", "id": "b-1"}
    (delivery,) = await deliveries(webhook_client, tenant, webhook["id"])
    assert request.headers["touchstone-delivery-id"] == delivery["id"]
    assert (delivery["status"], delivery["attempts"], delivery["event_id"]) == (
        "succeeded",
        1,
        event_id,
    )
    assert delivery["delivered_at"] is not None
    detail = await delivery_detail(webhook_client, tenant, webhook["id"], delivery["id"])
    (attempt,) = detail["attempt_log"]
    assert (attempt["number"], attempt["status_code"], attempt["error"]) == (1, 200, None)
    assert attempt["response_body"] == "ok"
    assert detail["payload"] == body


async def test_a_failing_receiver_is_retried_until_it_accepts(
    webhook_client: httpx.AsyncClient,
    receiver: Receiver,
    committed: Database,
    tenant: Tenant,
    deliver: Deliver,
) -> None:
    receiver.script("/flaky", (500, {}, b"database down"), (503, {}, b"still down"))
    webhook = await register(webhook_client, tenant, receiver.url("/flaky"))
    event_id = await emit(committed, tenant, "batch.done", rows=1)
    await deliver()

    assert len(receiver.requests) == 3
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1  # the same bytes every time
    assert {r.headers["touchstone-event-id"] for r in receiver.requests} == {event_id}
    for request in receiver.requests:
        _assert_signed(request, webhook["secret"])
    (delivery,) = await deliveries(webhook_client, tenant, webhook["id"])
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 3)
    detail = await delivery_detail(webhook_client, tenant, webhook["id"], delivery["id"])
    log = [(a["number"], a["status_code"], a["error"]) for a in detail["attempt_log"]]
    assert log == [(1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, None)]
    assert detail["attempt_log"][0]["response_body"] == "database down"


async def test_a_receiver_that_never_answers_ends_failed_after_the_last_attempt(
    webhook_client: httpx.AsyncClient,
    receiver: Receiver,
    committed: Database,
    tenant: Tenant,
    deliver: Deliver,
    delivery_settings: Callable[..., Settings],
) -> None:
    delivery_settings(webhook_timeout_seconds=0.3, webhook_max_attempts=2)
    receiver.script("/silent", "hang", "hang", "hang")
    webhook = await register(webhook_client, tenant, receiver.url("/silent"))
    await emit(committed, tenant, "batch.done")
    await deliver()

    assert len(receiver.at("/silent")) == 2
    (delivery,) = await deliveries(webhook_client, tenant, webhook["id"], status="failed")
    assert delivery["attempts"] == 2
    assert delivery["last_error"] == "timed out after 0.3 s"
    assert delivery["next_attempt_at"] is None
    detail = await delivery_detail(webhook_client, tenant, webhook["id"], delivery["id"])
    assert [a["error"] for a in detail["attempt_log"]] == ["timed out after 0.3 s"] * 2
    assert all(a["status_code"] is None for a in detail["attempt_log"])


async def test_redirects_to_forbidden_addresses_fail_at_once_and_allowed_ones_are_followed(
    webhook_client: httpx.AsyncClient,
    receiver: Receiver,
    committed: Database,
    tenant: Tenant,
    deliver: Deliver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks, "target_policy", lambda _settings: only_localhost())
    bystander = await Receiver(host="127.0.0.2").start()
    try:
        receiver.script("/evil", (302, {"Location": bystander.url("/steal")}, b""))
        receiver.script("/moved", (308, {"Location": "/new-home"}, b""))
        evil = await register(webhook_client, tenant, receiver.url("/evil"))
        moved = await register(webhook_client, tenant, receiver.url("/moved"))
        await emit(committed, tenant, "batch.done")
        await deliver()
    finally:
        await bystander.stop()

    assert bystander.requests == []
    assert len(receiver.at("/evil")) == 1  # not retried: the policy will not change its mind
    (refused,) = await deliveries(webhook_client, tenant, evil["id"])
    assert (refused["status"], refused["attempts"], refused["last_status_code"]) == (
        "failed",
        1,
        302,
    )
    assert "127.0.0.2" in refused["last_error"]
    assert "loopback" in refused["last_error"]

    (followed,) = await deliveries(webhook_client, tenant, moved["id"])
    assert followed["status"] == "succeeded"
    (hop, landed) = receiver.at("/moved") + receiver.at("/new-home")
    assert hop.body == landed.body
    _assert_signed(landed, moved["secret"])


async def test_a_name_that_resolves_to_a_private_address_at_delivery_is_refused(
    webhook_client: httpx.AsyncClient,
    receiver: Receiver,
    committed: Database,
    tenant: Tenant,
    deliver: Deliver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registered while hooks.test pointed at the receiver; then DNS moved it inside."""
    webhook = await register(webhook_client, tenant, receiver.url("/hook", host="hooks.test"))
    rebound = only_localhost(hooks_test=["10.0.0.5"])
    monkeypatch.setattr(tasks, "target_policy", lambda _settings: rebound)
    await emit(committed, tenant, "batch.done")
    await deliver()

    assert receiver.requests == []
    (delivery,) = await deliveries(webhook_client, tenant, webhook["id"])
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert "10.0.0.5" in delivery["last_error"]
    assert "private" in delivery["last_error"]


async def test_manual_redelivery_sends_the_same_event_again(
    webhook_client: httpx.AsyncClient,
    receiver: Receiver,
    committed: Database,
    tenant: Tenant,
    deliver: Deliver,
) -> None:
    receiver.script("/hook", (500, {}, b""), (500, {}, b""), (500, {}, b""))
    webhook = await register(webhook_client, tenant, receiver.url("/hook"))
    event_id = await emit(committed, tenant, "batch.done", rows=5)
    await deliver()
    (failed,) = await deliveries(webhook_client, tenant, webhook["id"])
    assert (failed["status"], failed["attempts"]) == ("failed", 3)

    response = await webhook_client.post(
        f"{API}/webhooks/{webhook['id']}/deliveries/{failed['id']}/redeliver",
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    await deliver()  # nothing new to relay: runs the redelivery's job

    again = await delivery_detail(webhook_client, tenant, webhook["id"], response.json()["id"])
    assert (again["status"], again["attempts"], again["redelivery_of"]) == (
        "succeeded",
        1,
        failed["id"],
    )
    assert len(receiver.requests) == 4
    first, last = receiver.requests[0], receiver.requests[-1]
    assert last.body == first.body
    assert last.headers["touchstone-event-id"] == first.headers["touchstone-event-id"] == event_id
    assert last.headers["touchstone-delivery-id"] == again["id"] != failed["id"]
    _assert_signed(last, webhook["secret"])


async def test_a_cancelled_delivery_job_fails_its_delivery(
    webhook_client: httpx.AsyncClient,
    receiver: Receiver,
    committed: Database,
    tenant: Tenant,
    database_urls: DatabaseUrls,
    deliver: Deliver,
) -> None:
    """Issue 13: a delivery whose job ends without settling it must not stay `pending`."""
    webhook = await register(webhook_client, tenant, receiver.url("/hook"), ["batch.*"])
    await emit(committed, tenant, "batch.done", rows=1)
    await relay(committed, database_urls)
    async with committed.transaction(org_id=tenant.org_id) as session:
        job_id = (
            await session.execute(
                select(JobRecord.id).where(JobRecord.task == tasks.deliver_webhook.name)
            )
        ).scalar_one()
    cancelled = await webhook_client.post(f"{API}/jobs/{job_id}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 202, cancelled.text
    await deliver()

    assert receiver.requests == []
    (delivery,) = await deliveries(webhook_client, tenant, webhook["id"])
    assert delivery["status"] == "failed"
    detail = await delivery_detail(webhook_client, tenant, webhook["id"], delivery["id"])
    assert detail["last_error"] == "The job was cancelled"
