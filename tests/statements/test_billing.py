"""Usage metering and Stripe: who may change an org's billing, signed webhooks, meter events.

Stripe is faked only as a local HTTP server speaking its API (`fake_stripe`), reached by
the production client through STRIPE_API_BASE; the webhook path runs Stripe's real
signature check over bodies signed the way Stripe signs them.

Issue 13, §5: an org admin could `PUT /billing/customer {"customer_id", "plan"}` to pick any
plan (the row was `active` by default) and claim any Stripe customer, and a second claim of
the same id was a 500. Now the plan changes only through the provider's webhooks or a
platform administrator, and only the platform links a customer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from bench.generators.statements import generate_statement
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import Tenant, assert_problem, make_tenant
from tests.security.world import make_platform_admin
from tests.statements.fake_stripe import API_KEY, FakeStripe, fake_stripe_server
from touchstone.core.audit import AuditEvent
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.migrations import alembic_config
from touchstone.core.postgres import libpq_dsn, prepare_database
from touchstone.main import create_app
from touchstone.statements.engines.billing import ORG_METADATA_KEY, StripeBilling

API = "/api/v1"
WEBHOOK = f"{API}/billing/webhooks/stripe"
SECRET = "whsec_test_secret"


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    async with fake_stripe_server() as fake:
        yield fake


@pytest.fixture
def stripe_settings(settings: Settings, fake_stripe: FakeStripe) -> Settings:
    return settings.model_copy(
        update={
            "billing_provider": "stripe",
            "stripe_api_key": SecretStr(API_KEY),
            "stripe_webhook_secret": SecretStr(SECRET),
            "stripe_api_base": fake_stripe.url,
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


@pytest.fixture
async def platform(
    database: Database, settings: Settings, client: httpx.AsyncClient, connection: AsyncConnection
) -> Tenant:
    """The operator's own org, whose admin is a platform administrator."""
    operator = await make_tenant(database, settings, client, "operator")
    await make_platform_admin(connection, operator)
    return operator


def signed(
    event: dict[str, Any], *, at: int | None = None, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    """The body and header exactly as Stripe sends them: v1 = HMAC-SHA256(secret, "t.body")."""
    body = json.dumps(event).encode()
    timestamp = at or int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={timestamp},v1={mac}", "Content-Type": "application/json"}


def subscription_event(
    event_id: str, customer: str, plan: str, status: str = "active"
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": "customer.subscription.updated",
        "data": {
            "object": {
                "id": "sub_123",
                "object": "subscription",
                "customer": customer,
                "status": status,
                "metadata": {"plan": plan},
                "current_period_end": 1_900_000_000,
            }
        },
    }


async def usage_of(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.get(f"{API}/usage", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def change_billing(
    client: httpx.AsyncClient, platform: Tenant, org: Tenant, **change: Any
) -> httpx.Response:
    return await client.patch(
        f"{API}/platform/orgs/{org.org_id}/billing",
        headers=platform.headers,
        json={"reason": "ticket 4711"} | change,
    )


async def link(
    client: httpx.AsyncClient, fake: FakeStripe, platform: Tenant, tenant: Tenant
) -> str:
    customer = fake.add_customer()
    response = await change_billing(client, platform, tenant, customer_id=customer)
    assert response.status_code == 200, response.text
    return customer


# --- what a tenant can no longer do ------------------------------------------------------


async def test_an_org_admin_cannot_choose_its_plan(
    billing_client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """The reported request: `plan: enterprise` made the org unlimited."""
    claim = {"customer_id": "cus_Bself", "plan": "enterprise"}
    response = await billing_client.put(
        f"{API}/billing/customer", headers=tenant_a.headers, json=claim
    )
    assert 400 <= response.status_code < 500, response.text
    usage = await usage_of(billing_client, tenant_a)
    assert (usage["plan"], usage["pages_quota"]) == ("free", 500)


async def test_no_tenant_can_claim_a_customer_id(
    billing_client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """The second claim was a 500; the first claimant got the customer's webhooks."""
    for tenant in (tenant_a, tenant_b):
        response = await billing_client.put(
            f"{API}/billing/customer",
            headers=tenant.headers,
            json={"customer_id": "cus_Victim1", "plan": "free"},
        )
        assert 400 <= response.status_code < 500, response.text
    body, headers = signed(subscription_event("evt_claim", "cus_Victim1", "enterprise"))
    assert (await billing_client.post(WEBHOOK, content=body, headers=headers)).json() == {
        "applied": False
    }
    for tenant in (tenant_a, tenant_b):
        assert (await usage_of(billing_client, tenant))["plan"] == "free"


async def test_the_platform_creates_the_orgs_customer_on_request(
    billing_client: httpx.AsyncClient, fake_stripe: FakeStripe, tenant_a: Tenant
) -> None:
    created = await billing_client.post(f"{API}/billing/customer", headers=tenant_a.headers)
    assert created.status_code == 201, created.text
    subscription = created.json()
    assert (subscription["plan"], subscription["status"]) == ("free", "none")
    customer = fake_stripe.customers[subscription["external_customer_id"]]
    assert customer["metadata"] == {ORG_METADATA_KEY: str(tenant_a.org_id)}
    assert customer["name"] == "Alpha"
    assert (await usage_of(billing_client, tenant_a))["pages_quota"] == 500

    again = await billing_client.post(f"{API}/billing/customer", headers=tenant_a.headers)
    assert_problem(again, 409, "customer_already_linked")
    assert len(fake_stripe.customers) == 1

    event = subscription_event("evt_new", subscription["external_customer_id"], "pro")
    body, headers = signed(event)
    assert (await billing_client.post(WEBHOOK, content=body, headers=headers)).json() == {
        "applied": True
    }
    usage = await usage_of(billing_client, tenant_a)
    assert (usage["plan"], usage["pages_quota"]) == ("pro", 20_000)


async def test_a_customer_cannot_be_created_while_billing_is_disabled(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    response = await client.post(f"{API}/billing/customer", headers=tenant_a.headers)
    assert_problem(response, 409, "billing_disabled")


# --- the platform ------------------------------------------------------------------------


async def test_a_platform_admin_links_a_customer_the_provider_confirms(
    billing_client: httpx.AsyncClient,
    fake_stripe: FakeStripe,
    platform: Tenant,
    tenant_a: Tenant,
    database: Database,
) -> None:
    customer = await link(billing_client, fake_stripe, platform, tenant_a)
    assert fake_stripe.customers[customer]["metadata"] == {ORG_METADATA_KEY: str(tenant_a.org_id)}
    body, headers = signed(subscription_event("evt_linked", customer, "pro"))
    assert (await billing_client.post(WEBHOOK, content=body, headers=headers)).json() == {
        "applied": True
    }
    assert (await usage_of(billing_client, tenant_a))["plan"] == "pro"
    async with database.transaction(org_id=tenant_a.org_id) as session:
        (audit,) = (
            await session.execute(
                select(AuditEvent).where(AuditEvent.action == "billing.changed_by_platform")
            )
        ).scalars()
    assert audit.actor_type == "user"
    assert audit.changes["after"]["customer_id"] == customer
    assert audit.changes["reason"] == "ticket 4711"


async def test_linking_is_checked_with_the_provider_and_never_a_500(
    billing_client: httpx.AsyncClient,
    fake_stripe: FakeStripe,
    platform: Tenant,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    taken = await link(billing_client, fake_stripe, platform, tenant_a)
    cases = [
        ("cus_Nobody1", 422, "unknown_customer"),
        (fake_stripe.add_customer(deleted=True), 422, "unknown_customer"),
        (fake_stripe.add_customer(metadata={ORG_METADATA_KEY: str(uuid.uuid4())}), 409, None),
        (taken, 409, "conflict"),  # linked to tenant A already
    ]
    for customer, status, code in cases:
        response = await change_billing(billing_client, platform, tenant_b, customer_id=customer)
        assert_problem(response, status, code)
    after = await change_billing(billing_client, platform, tenant_a, plan="free")
    assert after.json()["external_customer_id"] == taken, "A keeps its customer"


async def test_a_platform_admin_sets_plan_and_status_by_hand(
    billing_client: httpx.AsyncClient, platform: Tenant, tenant_a: Tenant, database: Database
) -> None:
    response = await change_billing(
        billing_client, platform, tenant_a, plan="enterprise", status="active"
    )
    assert response.status_code == 200, response.text
    usage = await usage_of(billing_client, tenant_a)
    assert (usage["plan"], usage["pages_quota"]) == ("enterprise", None)

    paused = await change_billing(billing_client, platform, tenant_a, status="past_due")
    assert paused.json()["plan"] == "enterprise"
    assert (await usage_of(billing_client, tenant_a))["plan"] == "free", "not in force"
    async with database.transaction(org_id=tenant_a.org_id) as session:
        trail = (
            await session.execute(
                select(AuditEvent.changes)
                .where(AuditEvent.action == "billing.changed_by_platform")
                .order_by(AuditEvent.occurred_at)
            )
        ).scalars()
        assert [c["after"]["status"] for c in trail] == ["active", "past_due"]


async def test_only_platform_admins_change_billing(
    billing_client: httpx.AsyncClient, platform: Tenant, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    own = await change_billing(billing_client, tenant_a, tenant_a, plan="enterprise")
    assert_problem(own, 403)
    other = await change_billing(billing_client, tenant_a, tenant_b, plan="enterprise")
    assert_problem(other, 403)
    nowhere = await billing_client.patch(
        f"{API}/platform/orgs/{uuid.uuid4()}/billing",
        headers=platform.headers,
        json={"reason": "typo", "plan": "pro"},
    )
    assert_problem(nowhere, 404)
    assert_problem(await change_billing(billing_client, platform, tenant_a, plan="gold"), 422)
    assert_problem(await change_billing(billing_client, platform, tenant_a), 422)
    assert_problem(await change_billing(billing_client, platform, tenant_a, plan=None), 422)
    assert (await usage_of(billing_client, tenant_a))["plan"] == "free"


async def test_a_platform_admin_sets_a_plan_without_a_provider(
    client: httpx.AsyncClient, platform: Tenant, tenant_a: Tenant
) -> None:
    response = await change_billing(client, platform, tenant_a, plan="pro", status="active")
    assert response.status_code == 200, response.text
    assert (await usage_of(client, tenant_a))["plan"] == "pro"
    linked = await change_billing(client, platform, tenant_a, customer_id="cus_Anything1")
    assert_problem(linked, 409, "billing_disabled")


# --- the provider's webhooks -------------------------------------------------------------


async def test_signed_event_sets_the_plan_once(
    billing_client: httpx.AsyncClient, fake_stripe: FakeStripe, platform: Tenant, tenant_a: Tenant
) -> None:
    customer = await link(billing_client, fake_stripe, platform, tenant_a)
    body, headers = signed(subscription_event("evt_1", customer, "pro"))
    first = await billing_client.post(WEBHOOK, content=body, headers=headers)
    assert first.json() == {"applied": True}
    usage = await usage_of(billing_client, tenant_a)
    assert usage["plan"] == "pro"
    assert usage["pages_quota"] == 20_000
    assert usage["billing"] == "stripe"

    replay = await billing_client.post(WEBHOOK, content=body, headers=headers)
    assert replay.json() == {"applied": False}


async def test_an_unknown_status_changes_nothing(
    billing_client: httpx.AsyncClient, fake_stripe: FakeStripe, platform: Tenant, tenant_a: Tenant
) -> None:
    customer = await link(billing_client, fake_stripe, platform, tenant_a)
    body, headers = signed(subscription_event("evt_odd", customer, "pro", status="free_forever"))
    await billing_client.post(WEBHOOK, content=body, headers=headers)
    assert (await usage_of(billing_client, tenant_a))["plan"] == "free"


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
    billing_client: httpx.AsyncClient,
    fake_stripe: FakeStripe,
    platform: Tenant,
    tenant_a: Tenant,
    forge: Any,
) -> None:
    customer = await link(billing_client, fake_stripe, platform, tenant_a)
    body, headers = forge(*signed(subscription_event("evt_2", customer, "pro")))
    assert_problem(await billing_client.post(WEBHOOK, content=body, headers=headers), 400)
    assert (await usage_of(billing_client, tenant_a))["plan"] == "free"


async def test_unknown_customer_is_acknowledged_and_ignored(
    billing_client: httpx.AsyncClient,
) -> None:
    body, headers = signed(subscription_event("evt_3", "cus_Nobody", "pro"))
    response = await billing_client.post(WEBHOOK, content=body, headers=headers)
    assert response.json() == {"applied": False}


async def test_webhook_is_not_found_while_billing_is_disabled(client: httpx.AsyncClient) -> None:
    body, headers = signed(subscription_event("evt_4", "cus_Alpha1", "pro"))
    assert_problem(await client.post(WEBHOOK, content=body, headers=headers), 404)


async def test_usage_goes_to_the_stripe_meter(
    stripe_settings: Settings, fake_stripe: FakeStripe
) -> None:
    billing = StripeBilling(stripe_settings)
    await billing.report_usage(
        customer_id="cus_Alpha1",
        quantity=7,
        identifier="usage-1",
        timestamp=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    )
    [(method, path, form)] = fake_stripe.requests
    assert (method, path) == ("POST", "/v1/billing/meter_events")
    assert form["event_name"] == "statement_pages"
    assert form["payload"] == {"stripe_customer_id": "cus_Alpha1", "value": "7"}
    assert form["identifier"] == "usage-1"


# --- the quota ---------------------------------------------------------------------------


async def test_uploads_waiting_for_the_worker_count_against_the_quota(
    client: httpx.AsyncClient, tenant_a: Tenant, settings: Settings
) -> None:
    """Pages are metered when read: a burst of uploads each saw an unmetered month."""
    statement = generate_statement("ruled_uk", seed=41)
    quotas = settings.statements_plan_quotas
    original = dict(quotas)
    quotas["free"] = statement.pages * 2 - 1
    try:
        first, second = [
            await client.post(
                f"{API}/batches",
                headers=tenant_a.headers,
                files=[("files", (f"{n}.pdf", statement.pdf, "application/pdf"))],
            )
            for n in (1, 2)
        ]
    finally:
        quotas.clear()
        quotas.update(original)
    assert first.status_code == 202, first.text
    problem = assert_problem(second, 402, "quota_exceeded")
    assert problem["pages_used"] == statement.pages


# --- the data the old route left -----------------------------------------------------------


def test_the_migration_clears_what_tenants_claimed(settings: Settings) -> None:
    """Every subscription row so far was a tenant's claim (customer id, plan, `active`):
    migration 0010 puts each org back on the default plan, keeping the claim in its trail."""
    scratch = settings.model_copy(update={"database_name": f"{settings.database_name}_m10"})
    urls = prepare_database(scratch, migrate=False)
    config = alembic_config(urls.admin, scratch.database_owner_role, scratch.database_runtime_role)
    org_id = uuid.uuid4()
    try:
        command.upgrade(config, "0008")
        with psycopg.connect(libpq_dsn(urls.admin)) as conn:
            conn.execute(
                "insert into subscriptions (id, org_id, plan, external_customer_id)"
                " values (%s, %s, 'enterprise', 'cus_Bself')",
                (uuid.uuid4(), org_id),
            )
        command.upgrade(config, "head")
        with psycopg.connect(libpq_dsn(urls.admin)) as conn:
            row = conn.execute(
                "select plan, status, external_customer_id from subscriptions where org_id = %s",
                (org_id,),
            ).fetchone()
            (changes,) = conn.execute(
                "select changes from audit_events where org_id = %s", (org_id,)
            ).fetchone() or (None,)
    finally:
        postgres = urls.admin.set(database="postgres")
        with psycopg.connect(libpq_dsn(postgres), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch.database_name}" WITH (FORCE)')
    assert row == ("free", "none", None)
    assert (changes["plan"], changes["status"], changes["customer_id"]) == (
        "enterprise",
        "active",
        "cus_Bself",
    )
