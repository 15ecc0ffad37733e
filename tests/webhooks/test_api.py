"""Registering webhooks, the outbox consumer and the delivery log API (per-test rollback)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from tests.conftest import Tenant, add_member, assert_problem
from tests.webhooks.conftest import API, app_client, deliveries, delivery_detail, register

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events.hub import LiveEvent
from touchstone.core.jobs import JobRecord
from touchstone.core.permissions import Role
from touchstone.webhooks.models import WebhookDelivery, WebhookEndpoint
from touchstone.webhooks.secret_store import decrypt_secret
from touchstone.webhooks.service import on_events
from touchstone.webhooks.tasks import deliver_webhook

HOOK = "https://hooks.example.com/touchstone"  # resolves to a public address in the fake DNS


# --- registration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/x", "webhook_target_refused"),
        ("https://127.0.0.1/x", "webhook_target_refused"),
        ("https://10.1.2.3/x", "webhook_target_refused"),
        ("https://169.254.169.254/latest/meta-data/", "webhook_target_refused"),
        ("https://[::1]/x", "webhook_target_refused"),
        ("https://internal.example.com/x", "webhook_target_refused"),  # resolves to 10.0.0.5
        ("https://metadata.example.com/x", "webhook_target_refused"),
        ("https://mixed.example.com/x", "webhook_target_refused"),
        ("https://user:secret@hooks.example.com/x", "webhook_target_refused"),
        ("https://nowhere.example.com/x", "webhook_target_unresolvable"),
    ],
)
async def test_registration_refuses_unsafe_targets(
    client: httpx.AsyncClient, tenant_a: Tenant, url: str, code: str
) -> None:
    response = await client.post(f"{API}/webhooks", headers=tenant_a.headers, json={"url": url})
    assert_problem(response, 422, code)
    listed = await client.get(f"{API}/webhooks", headers=tenant_a.headers)
    assert listed.json()["total"] == 0


async def test_registration_refuses_bad_topics_and_fields(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    for body in (
        {"url": HOOK, "topics": ["Not A Topic"]},
        {"url": HOOK, "topics": ["batch.*.x"]},
        {"url": HOOK, "org_id": str(uuid.uuid4())},
        {"url": HOOK, "secret": "whsec_mine"},
        {"url": ""},
    ):
        response = await client.post(f"{API}/webhooks", headers=tenant_a.headers, json=body)
        assert_problem(response, 422, "invalid_input")


async def test_a_public_https_target_is_registered_with_a_secret_shown_once(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database, settings: Settings
) -> None:
    created = await register(client, tenant_a, HOOK, ["batch.*", "invoice.paid", "batch.*"])
    assert created["secret"].startswith("whsec_")
    assert created["topics"] == ["batch.*", "invoice.paid"]
    assert created["is_active"] is True
    shown = await client.get(f"{API}/webhooks/{created['id']}", headers=tenant_a.headers)
    listed = await client.get(f"{API}/webhooks", headers=tenant_a.headers)
    assert "secret" not in shown.json()
    assert created["secret"] not in listed.text
    assert listed.json()["items"][0]["url"] == HOOK

    async def stored_secret() -> str:
        async with database.transaction(org_id=tenant_a.org_id) as session:
            stored = await session.get(WebhookEndpoint, uuid.UUID(created["id"]))
        assert stored is not None
        assert "whsec_" not in stored.secret_encrypted  # encrypted at rest
        return decrypt_secret(settings, stored.secret_encrypted)

    assert await stored_secret() == created["secret"]
    rotated = await client.post(
        f"{API}/webhooks/{created['id']}/rotate-secret", headers=tenant_a.headers
    )
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]
    assert await stored_secret() == rotated.json()["secret"]  # the new one signs from now on


async def test_configuration_can_allow_http_and_private_targets(
    settings: Settings, database: Database, tenant_a: Tenant
) -> None:
    relaxed = settings.model_copy(
        update={"webhook_allow_http": True, "webhook_allow_private_targets": True}
    )
    async with app_client(relaxed, database) as client:
        created = await register(client, tenant_a, "http://127.0.0.1:9/hook")
    assert created["url"] == "http://127.0.0.1:9/hook"


async def test_update_rechecks_the_url_and_changes_topics_and_state(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await register(client, tenant_a, HOOK)
    path = f"{API}/webhooks/{created['id']}"
    refused = await client.patch(
        path, headers=tenant_a.headers, json={"url": "https://internal.example.com/x"}
    )
    assert_problem(refused, 422, "webhook_target_refused")
    assert_problem(await client.patch(path, headers=tenant_a.headers, json={"url": None}), 422)
    updated = await client.patch(
        path,
        headers=tenant_a.headers,
        json={"topics": ["invoice.*"], "is_active": False, "description": "billing"},
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["url"], body["topics"], body["is_active"]) == (HOOK, ["invoice.*"], False)
    assert body["description"] == "billing"


async def test_only_webhook_admins_may_read_or_manage(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    created = await register(client, tenant_a, HOOK)
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    _, manager = await add_member(client, tenant_a, Role.BRANCH_MANAGER)
    for headers in (viewer, manager):
        assert_problem(await client.get(f"{API}/webhooks", headers=headers), 403, "forbidden")
        response = await client.post(f"{API}/webhooks", headers=headers, json={"url": HOOK})
        assert_problem(response, 403, "forbidden")
        response = await client.delete(f"{API}/webhooks/{created['id']}", headers=headers)
        assert_problem(response, 403, "forbidden")
    assert_problem(await client.get(f"{API}/webhooks"), 401)


# --- the outbox consumer -----------------------------------------------------------------


def live_event(org_id: uuid.UUID, topic: str, seq: int) -> LiveEvent:
    return LiveEvent(
        seq=seq,
        event_id=str(uuid.uuid4()),
        org_id=org_id,
        topic=topic,
        aggregate_type="batch",
        aggregate_id="b-1",
        payload={"n": seq},
        created_at="2026-01-01T00:00:00+00:00",
    )


@pytest.fixture
def endpoint_queries(database: Database) -> Iterator[list[str]]:
    """SELECTs that read webhook_endpoints while the fixture is active."""
    seen: list[str] = []

    def record(conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().lower().startswith("select") and "webhook_endpoints" in statement:
            seen.append(statement)

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def test_consumer_creates_deliveries_for_matching_active_endpoints_of_the_org(
    client: httpx.AsyncClient,
    tenant_a: Tenant,
    tenant_b: Tenant,
    database: Database,
    endpoint_queries: list[str],
) -> None:
    every = await register(client, tenant_a, HOOK)
    batches = await register(client, tenant_a, HOOK, ["batch.*"])
    invoices = await register(client, tenant_a, HOOK, ["invoice.paid"])
    paused = await register(client, tenant_a, HOOK)
    await client.patch(
        f"{API}/webhooks/{paused['id']}", headers=tenant_a.headers, json={"is_active": False}
    )
    theirs = await register(client, tenant_b, HOOK)
    events = [
        live_event(tenant_a.org_id, topic, seq)
        for seq, topic in enumerate(["batch.done", "invoice.paid", "user.created"], start=1)
    ]
    endpoint_queries.clear()
    async with database.transaction(org_id=tenant_a.org_id) as session:
        await on_events(session, tenant_a.org_id, events)
    assert len(endpoint_queries) == 1  # one query for the endpoints per batch

    async with database.transaction(org_id=tenant_a.org_id) as session:
        rows = (await session.execute(select(WebhookDelivery))).scalars().all()
        jobs = (
            (await session.execute(select(JobRecord).where(JobRecord.task == deliver_webhook.name)))
            .scalars()
            .all()
        )
    got = {(str(r.endpoint_id), r.topic) for r in rows}
    assert got == {
        (every["id"], "batch.done"),
        (every["id"], "invoice.paid"),
        (every["id"], "user.created"),
        (batches["id"], "batch.done"),
        (invoices["id"], "invoice.paid"),
    }
    assert all(r.status == "pending" and r.attempts == 0 for r in rows)
    assert len(jobs) == 5
    assert {r.endpoint_id for r in rows}.isdisjoint(
        {uuid.UUID(paused["id"]), uuid.UUID(theirs["id"])}
    )
    first = next(r for r in rows if r.topic == "batch.done")
    body = json.loads(first.payload)
    assert body["event_id"] == str(first.event_id) == events[0].event_id
    assert (body["topic"], body["id"], body["data"]) == ("batch.done", 1, {"n": 1})
    assert body["org_id"] == str(tenant_a.org_id)

    async with database.transaction(org_id=tenant_b.org_id) as session:
        visible = (await session.execute(select(WebhookDelivery))).scalars().all()
    assert visible == []  # RLS: tenant B sees none of A's deliveries


# --- the delivery log, redelivery, tenancy and audit --------------------------------------


async def _one_delivery(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> tuple[dict[str, Any], dict[str, Any]]:
    webhook = await register(client, tenant, HOOK)
    async with database.transaction(org_id=tenant.org_id) as session:
        await on_events(session, tenant.org_id, [live_event(tenant.org_id, "batch.done", 7)])
    (delivery,) = await deliveries(client, tenant, webhook["id"])
    return webhook, delivery


async def test_delivery_log_filters_and_redelivery(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    webhook, delivery = await _one_delivery(client, database, tenant_a)
    assert (delivery["status"], delivery["attempts"], delivery["event_seq"]) == ("pending", 0, 7)
    detail = await delivery_detail(client, tenant_a, webhook["id"], delivery["id"])
    assert detail["attempt_log"] == []
    assert detail["payload"]["event_id"] == delivery["event_id"]

    response = await client.post(
        f"{API}/webhooks/{webhook['id']}/deliveries/{delivery['id']}/redeliver",
        headers=tenant_a.headers,
    )
    assert response.status_code == 202, response.text
    again = response.json()
    assert again["redelivery_of"] == delivery["id"]
    assert (again["event_id"], again["payload"]) == (delivery["event_id"], detail["payload"])
    assert response.headers["location"].endswith(f"/deliveries/{again['id']}")
    async with database.transaction(org_id=tenant_a.org_id) as session:
        await on_events(session, tenant_a.org_id, [live_event(tenant_a.org_id, "batch.done", 8)])
    assert len(await deliveries(client, tenant_a, webhook["id"])) == 3
    assert await deliveries(client, tenant_a, webhook["id"], status="succeeded") == []
    by_event = await deliveries(client, tenant_a, webhook["id"], event_id=delivery["event_id"])
    assert {d["id"] for d in by_event} == {delivery["id"], again["id"]}
    bad = await client.get(
        f"{API}/webhooks/{webhook['id']}/deliveries",
        headers=tenant_a.headers,
        params={"status": "lost"},
    )
    assert_problem(bad, 422, "invalid_input")

    await client.patch(
        f"{API}/webhooks/{webhook['id']}", headers=tenant_a.headers, json={"is_active": False}
    )
    disabled = await client.post(
        f"{API}/webhooks/{webhook['id']}/deliveries/{delivery['id']}/redeliver",
        headers=tenant_a.headers,
    )
    assert_problem(disabled, 409, "webhook_disabled")


async def test_another_tenants_ids_are_not_found_on_every_route(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, database: Database
) -> None:
    webhook, delivery = await _one_delivery(client, database, tenant_a)
    mine = await register(client, tenant_b, HOOK)
    hook, item = f"{API}/webhooks/{webhook['id']}", f"deliveries/{delivery['id']}"
    attempts = [
        ("GET", hook, None),
        ("PATCH", hook, {"description": "taken over"}),
        ("DELETE", hook, None),
        ("POST", f"{hook}/rotate-secret", None),
        ("GET", f"{hook}/deliveries", None),
        ("GET", f"{hook}/{item}", None),
        ("POST", f"{hook}/{item}/redeliver", None),
        # B's own webhook with A's delivery id is no way in either
        ("GET", f"{API}/webhooks/{mine['id']}/{item}", None),
        ("POST", f"{API}/webhooks/{mine['id']}/{item}/redeliver", None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, headers=tenant_b.headers, json=body)
        assert_problem(response, 404)
    listed = await client.get(f"{API}/webhooks", headers=tenant_b.headers)
    assert [w["id"] for w in listed.json()["items"]] == [mine["id"]]
    still = await client.get(hook, headers=tenant_a.headers)
    assert still.json()["description"] == ""


async def test_every_change_is_audited_and_delete_takes_the_log_with_it(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    webhook, delivery = await _one_delivery(client, database, tenant_a)
    hook = f"{API}/webhooks/{webhook['id']}"
    await client.patch(hook, headers=tenant_a.headers, json={"topics": ["batch.*"]})
    await client.post(f"{hook}/rotate-secret", headers=tenant_a.headers)
    redelivered = await client.post(
        f"{hook}/deliveries/{delivery['id']}/redeliver", headers=tenant_a.headers
    )
    assert (await client.delete(hook, headers=tenant_a.headers)).status_code == 204
    assert_problem(await client.get(hook, headers=tenant_a.headers), 404, "webhook_not_found")

    response = await client.get(
        f"{API}/audit-events", headers=tenant_a.headers, params={"limit": 100}
    )
    audited = {
        (e["action"], e["object_id"]): e
        for e in response.json()["items"]
        if e["action"].startswith("webhook.")
    }
    assert set(audited) == {
        ("webhook.created", webhook["id"]),
        ("webhook.updated", webhook["id"]),
        ("webhook.secret_rotated", webhook["id"]),
        ("webhook.redelivered", redelivered.json()["id"]),
        ("webhook.deleted", webhook["id"]),
    }
    assert audited[("webhook.updated", webhook["id"])]["changes"] == {"topics": [[], ["batch.*"]]}
    assert "whsec_" not in response.text  # secrets never reach the audit log
    async with database.transaction(org_id=tenant_a.org_id) as session:
        left = (await session.execute(select(WebhookDelivery))).scalars().all()
    assert left == []


async def test_the_attempt_log_is_append_only_for_the_application(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    await _one_delivery(client, database, tenant_a)
    for statement in (
        "update webhook_delivery_attempts set error = 'x'",
        "delete from webhook_delivery_attempts",
    ):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with database.transaction(org_id=tenant_a.org_id) as session:
                await session.execute(text(statement))


# --- the read routes (`core.reads`): the same answers as the session path gave -----------


async def test_reads_never_show_the_secret(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    webhook, delivery = await _one_delivery(client, database, tenant_a)
    async with database.transaction(org_id=tenant_a.org_id) as session:
        stored = await session.get(WebhookEndpoint, uuid.UUID(webhook["id"]))
    assert stored is not None
    hook = f"{API}/webhooks/{webhook['id']}"
    reads = [
        f"{API}/webhooks",
        hook,
        f"{hook}/deliveries",
        f"{hook}/deliveries/{delivery['id']}",
    ]
    for path in reads:
        response = await client.get(path, headers=tenant_a.headers)
        assert response.status_code == 200, response.text
        assert webhook["secret"] not in response.text
        assert stored.secret_encrypted not in response.text
        assert "secret" not in response.text
    shown = (await client.get(hook, headers=tenant_a.headers)).json()
    listed = (await client.get(f"{API}/webhooks", headers=tenant_a.headers)).json()
    fields = {"id", "url", "description", "topics", "is_active", "created_by", "created_at"}
    assert set(shown) == set(listed["items"][0]) == fields
    assert shown == {k: v for k, v in webhook.items() if k != "secret"}


async def test_a_delivery_is_found_under_its_own_webhook_only(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, database: Database
) -> None:
    webhook, delivery = await _one_delivery(client, database, tenant_a)
    other = await register(client, tenant_a, HOOK)
    theirs = await register(client, tenant_b, HOOK)
    item = f"deliveries/{delivery['id']}"
    for owner in (other["id"], theirs["id"], str(uuid.uuid4())):
        response = await client.get(f"{API}/webhooks/{owner}/{item}", headers=tenant_a.headers)
        assert_problem(response, 404, "webhook_delivery_not_found")
    for path in (f"{API}/webhooks/{webhook['id']}", f"{API}/webhooks/{webhook['id']}/{item}"):
        # A's webhook and delivery, asked for by B: not found, with the same codes
        response = await client.get(path, headers=tenant_b.headers)
        code = "webhook_delivery_not_found" if "deliveries" in path else "webhook_not_found"
        assert_problem(response, 404, code)
    for hook in (theirs["id"], str(uuid.uuid4())):
        response = await client.get(f"{API}/webhooks/{hook}/deliveries", headers=tenant_a.headers)
        assert_problem(response, 404, "webhook_not_found")
    assert await deliveries(client, tenant_a, other["id"]) == []
    unknown = await client.get(
        f"{API}/webhooks/{webhook['id']}/deliveries/{uuid.uuid4()}", headers=tenant_a.headers
    )
    assert_problem(unknown, 404, "webhook_delivery_not_found")


async def test_the_attempt_log_is_the_deliverys_own_oldest_first(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    webhook = await register(client, tenant_a, HOOK)
    async with database.transaction(org_id=tenant_a.org_id) as session:
        events = [live_event(tenant_a.org_id, "batch.done", seq) for seq in (1, 2)]
        await on_events(session, tenant_a.org_id, events)
    first, second = sorted(await deliveries(client, tenant_a, webhook["id"]), key=_seq)
    started = "2026-01-01T00:00:0{}+00:00"
    async with database.transaction(org_id=tenant_a.org_id) as session:
        for delivery_id, number, code in (
            (first["id"], 2, 200),
            (first["id"], 1, 503),
            (second["id"], 1, 500),
        ):
            await session.execute(
                text(
                    "insert into webhook_delivery_attempts (id, org_id, delivery_id, number,"
                    " started_at, duration_ms, status_code, error, response_body) values"
                    " (:id, :org, :delivery, :number, :started, 12, :code, null, 'ok')"
                ),
                {
                    "id": uuid.uuid4(),
                    "org": tenant_a.org_id,
                    "delivery": uuid.UUID(delivery_id),
                    "number": number,
                    "started": datetime.fromisoformat(started.format(number)),
                    "code": code,
                },
            )
    detail = await delivery_detail(client, tenant_a, webhook["id"], first["id"])
    assert [(a["number"], a["status_code"]) for a in detail["attempt_log"]] == [(1, 503), (2, 200)]
    assert detail["attempt_log"][0] == {
        "number": 1,
        "started_at": "2026-01-01T00:00:01Z",
        "duration_ms": 12,
        "status_code": 503,
        "error": None,
        "response_body": "ok",
    }
    assert {k: v for k, v in detail.items() if k not in ("payload", "attempt_log")} == first
    assert (detail["payload"]["id"], detail["payload"]["data"]) == (1, {"n": 1})
    other = await delivery_detail(client, tenant_a, webhook["id"], second["id"])
    assert [(a["number"], a["status_code"]) for a in other["attempt_log"]] == [(1, 500)]


def _seq(delivery: dict[str, Any]) -> int:
    seq: int = delivery["event_seq"]
    return seq


async def test_delivery_pages_sorts_and_totals(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    webhook = await register(client, tenant_a, HOOK)
    async with database.transaction(org_id=tenant_a.org_id) as session:
        events = [live_event(tenant_a.org_id, "batch.done", seq) for seq in (3, 1, 2)]
        await on_events(session, tenant_a.org_id, events)
    path = f"{API}/webhooks/{webhook['id']}/deliveries"

    async def page(**params: Any) -> dict[str, Any]:
        response = await client.get(path, headers=tenant_a.headers, params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    ascending = await page(sort="event_seq", limit=2)
    assert [d["event_seq"] for d in ascending["items"]] == [1, 2]
    assert (ascending["total"], ascending["limit"], ascending["offset"]) == (3, 2, 0)
    descending = await page(sort="-event_seq", offset=1)
    assert [d["event_seq"] for d in descending["items"]] == [2, 1]
    past_the_end = await page(offset=10, status="pending")
    assert (past_the_end["items"], past_the_end["total"]) == ([], 3)
    assert (await page(offset=10, status="failed"))["total"] == 0
    bad = await client.get(path, headers=tenant_a.headers, params={"sort": "topic"})
    assert (
        "choose one of: created_at, event_seq"
        in assert_problem(bad, 422, "invalid_input")["detail"]
    )
    listed = await client.get(f"{API}/webhooks", headers=tenant_a.headers, params={"sort": "-url"})
    assert listed.json()["total"] == 1
    bad = await client.get(f"{API}/webhooks", headers=tenant_a.headers, params={"sort": "topics"})
    assert_problem(bad, 422, "invalid_input")


async def test_who_may_ask_comes_before_what_was_asked(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """A caller without `webhooks:read` is refused (403) whatever else is wrong with the
    request (an unknown sort or webhook), its principal known to this process or not; then
    a malformed request (422) comes before an unknown webhook (404)."""
    _, viewer = await add_member(client, tenant_a, Role.VIEWER)
    missing = f"{API}/webhooks/{uuid.uuid4()}"
    asks = [
        (f"{API}/webhooks", {"sort": "nope"}),
        (missing, {}),
        (f"{missing}/deliveries", {"sort": "nope"}),
        (f"{missing}/deliveries/{uuid.uuid4()}", {}),
    ]
    for _ in range(2):  # the second round's caller is the one this process remembered
        for path, params in asks:
            response = await client.get(path, headers=viewer, params=params)
            assert_problem(response, 403, "forbidden")
        assert (await client.get(f"{API}/me", headers=viewer)).status_code == 200
    unknown = await client.get(
        f"{missing}/deliveries", headers=tenant_a.headers, params={"sort": "nope"}
    )
    assert_problem(unknown, 422, "invalid_input")
    assert_problem(await client.get(f"{missing}/deliveries", headers=tenant_a.headers), 404)
    for path, _ in asks:
        assert_problem(await client.get(path), 401)
