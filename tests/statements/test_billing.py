"""Usage metering and Stripe: signed webhooks (as Stripe signs them) and meter events.

Only Stripe's HTTP API is faked, behind the SDK's own HTTP-client seam; the webhook path
runs Stripe's real signature check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
import stripe
from pydantic import SecretStr

from tests.conftest import Tenant, assert_problem
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.main import create_app
from touchstone.statements.engines.billing import StripeBilling

API = "/api/v1"
WEBHOOK = f"{API}/billing/webhooks/stripe"
SECRET = "whsec_test_secret"


@pytest.fixture
def stripe_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "billing_provider": "stripe",
            "stripe_api_key": SecretStr("sk_test_touchstone"),
            "stripe_webhook_secret": SecretStr(SECRET),
        }
    )


@pytest.fixture
async def billing_client(
    stripe_settings: Settings, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stripe_settings, database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def signed(
    event: dict[str, Any], *, at: int | None = None, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    """The body and header exactly as Stripe sends them: v1 = HMAC-SHA256(secret, "t.body")."""
    body = json.dumps(event).encode()
    timestamp = at or int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={timestamp},v1={mac}", "Content-Type": "application/json"}


def subscription_event(event_id: str, customer: str, plan: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": "customer.subscription.updated",
        "data": {
            "object": {
                "id": "sub_123",
                "object": "subscription",
                "customer": customer,
                "status": "active",
                "metadata": {"plan": plan},
                "current_period_end": 1_900_000_000,
            }
        },
    }


async def link(client: httpx.AsyncClient, tenant: Tenant, customer: str) -> None:
    response = await client.put(
        f"{API}/billing/customer",
        headers=tenant.headers,
        json={"customer_id": customer, "plan": "free"},
    )
    assert response.status_code == 200, response.text


async def test_signed_event_sets_the_plan_once(
    billing_client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await link(billing_client, tenant_a, "cus_Alpha1")
    body, headers = signed(subscription_event("evt_1", "cus_Alpha1", "pro"))
    first = await billing_client.post(WEBHOOK, content=body, headers=headers)
    assert first.json() == {"applied": True}
    usage = (await billing_client.get(f"{API}/usage", headers=tenant_a.headers)).json()
    assert usage["plan"] == "pro"
    assert usage["pages_quota"] == 20_000
    assert usage["billing"] == "stripe"

    replay = await billing_client.post(WEBHOOK, content=body, headers=headers)
    assert replay.json() == {"applied": False}


@pytest.mark.parametrize(
    "forge",
    [
        lambda body, headers: (body, {**headers, "Stripe-Signature": "t=1,v1=00"}),
        lambda body, headers: (body.replace(b'"pro"', b'"enterprise"'), headers),
        lambda body, headers: (body, {"Content-Type": "application/json"}),
        lambda body, headers: signed(json.loads(body), secret="whsec_other"),
        lambda body, headers: signed(json.loads(body), at=int(time.time()) - 3600),
    ],
    ids=["bad-mac", "body-changed", "no-signature", "other-secret", "stale"],
)
async def test_forged_or_stale_events_change_nothing(
    billing_client: httpx.AsyncClient, tenant_a: Tenant, forge: Any
) -> None:
    await link(billing_client, tenant_a, "cus_Alpha2")
    body, headers = forge(*signed(subscription_event("evt_2", "cus_Alpha2", "pro")))
    assert_problem(await billing_client.post(WEBHOOK, content=body, headers=headers), 400)
    usage = (await billing_client.get(f"{API}/usage", headers=tenant_a.headers)).json()
    assert usage["plan"] == "free"


async def test_unknown_customer_is_acknowledged_and_ignored(
    billing_client: httpx.AsyncClient,
) -> None:
    body, headers = signed(subscription_event("evt_3", "cus_Nobody", "pro"))
    response = await billing_client.post(WEBHOOK, content=body, headers=headers)
    assert response.json() == {"applied": False}


async def test_webhook_is_not_found_while_billing_is_disabled(client: httpx.AsyncClient) -> None:
    body, headers = signed(subscription_event("evt_4", "cus_Alpha1", "pro"))
    assert_problem(await client.post(WEBHOOK, content=body, headers=headers), 404)


class FakeStripeApi(stripe.HTTPXClient):
    """Stripe's HTTP API, faked at the SDK's HTTP-client seam: records each request."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        form = urllib.parse.parse_qs(post_data or "")
        self.requests.append((method, url, form))
        reply = {"object": "billing.meter_event", "event_name": form["event_name"][0]}
        return json.dumps(reply).encode(), 200, {"request-id": "req_fake"}


async def test_usage_goes_to_the_stripe_meter(stripe_settings: Settings) -> None:
    api = FakeStripeApi()
    client = stripe.StripeClient("sk_test_touchstone", http_client=api)
    billing = StripeBilling(stripe_settings, client)
    await billing.report_usage(
        customer_id="cus_Alpha1",
        quantity=7,
        identifier="usage-1",
        timestamp=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    )
    [(method, url, form)] = api.requests
    assert (method, url) == ("post", "https://api.stripe.com/v1/billing/meter_events")
    assert form["event_name"] == ["statement_pages"]
    assert form["payload[stripe_customer_id]"] == ["cus_Alpha1"]
    assert form["payload[value]"] == ["7"]
    assert form["identifier"] == ["usage-1"]
