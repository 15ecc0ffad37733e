"""Usage billing behind one small interface: disabled by default, Stripe when configured.

The statements service meters processed pages itself (usage events, quotas); an engine
forwards usage to the provider, reads the provider's signed webhooks, and manages the
provider customer an org is billed as. Which customer belongs to which org is the
provider's word or the platform's, never a tenant's: the customer carries the org id in
its metadata, and a customer tagged with another org cannot be linked (issue 13, §5).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import stripe
import structlog

from touchstone.core.config import Settings
from touchstone.core.errors import AppError, Conflict, InvalidInput, NotFound

ORG_METADATA_KEY = "touchstone_org_id"
"""The provider customer's metadata entry that names the org it bills."""
log = structlog.get_logger("touchstone.billing")


class InvalidBillingSignature(AppError):
    status, code, title = 400, "invalid_signature", "Invalid webhook signature"


class BillingDisabled(Conflict):
    code, title = "billing_disabled", "Billing is not enabled on this platform"


class UnknownCustomer(InvalidInput):
    code, title = "unknown_customer", "The billing provider has no such customer"


class CustomerOfAnotherOrg(Conflict):
    code, title = "customer_of_another_org", "The customer bills another organization"


class BillingProviderUnavailable(AppError):
    """The provider failed or refused our credentials: a dependency problem, never a 500."""

    status, code, title = 502, "billing_provider_error", "The billing provider did not answer"


@dataclass(frozen=True, slots=True)
class BillingWebhook:
    """A verified provider event: its id (for idempotency), type and object."""

    id: str
    type: str
    data: dict[str, Any]


class BillingEngine(Protocol):
    name: str

    async def report_usage(
        self, *, customer_id: str, quantity: int, identifier: str, timestamp: dt.datetime
    ) -> None:
        """Send `quantity` pages for `customer_id`; `identifier` makes a resend harmless."""
        ...

    def verify_webhook(self, payload: bytes, signature: str | None) -> BillingWebhook:
        """The event if the signature over the raw body holds and is fresh, else raise."""
        ...

    async def create_customer(self, *, org_id: uuid.UUID, name: str) -> str:
        """A new provider customer for the org (its id in the metadata); returns its id.
        Asking twice for the same org returns the same customer."""
        ...

    async def claim_customer(self, customer_id: str, org_id: uuid.UUID) -> None:
        """Check that `customer_id` exists and bills no other org, then tag it with `org_id`;
        UnknownCustomer or CustomerOfAnotherOrg otherwise."""
        ...


class DisabledBilling:
    """Nothing is charged; usage is still metered and quotas still apply."""

    name = "disabled"

    async def report_usage(
        self, *, customer_id: str, quantity: int, identifier: str, timestamp: dt.datetime
    ) -> None:
        return None

    def verify_webhook(self, payload: bytes, signature: str | None) -> BillingWebhook:
        raise NotFound("Billing is not enabled")

    async def create_customer(self, *, org_id: uuid.UUID, name: str) -> str:
        raise BillingDisabled()

    async def claim_customer(self, customer_id: str, org_id: uuid.UUID) -> None:
        raise BillingDisabled()


class StripeBilling:
    """Pages go to a Stripe billing meter; webhooks are checked with Stripe's own scheme
    (HMAC-SHA256 over `t.payload`, timestamp tolerance); customers carry the org id."""

    name = "stripe"

    def __init__(self, settings: Settings, client: stripe.StripeClient | None = None) -> None:
        assert settings.stripe_api_key, "Settings require it with BILLING_PROVIDER=stripe"
        assert settings.stripe_webhook_secret, "Settings require it with BILLING_PROVIDER=stripe"
        self._client = client or stripe.StripeClient(
            settings.stripe_api_key.get_secret_value(),
            base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None,
            http_client=stripe.HTTPXClient(),
            max_network_retries=2,
        )
        self._webhook_secret = settings.stripe_webhook_secret.get_secret_value()
        self._tolerance = settings.stripe_webhook_tolerance_seconds
        self._meter = settings.stripe_meter_event_name

    async def report_usage(
        self, *, customer_id: str, quantity: int, identifier: str, timestamp: dt.datetime
    ) -> None:
        await self._client.v1.billing.meter_events.create_async(
            {
                "event_name": self._meter,
                "identifier": identifier,
                "timestamp": int(timestamp.timestamp()),
                "payload": {"stripe_customer_id": customer_id, "value": str(quantity)},
            }
        )

    def verify_webhook(self, payload: bytes, signature: str | None) -> BillingWebhook:
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self._webhook_secret, tolerance=self._tolerance
            )
        except (stripe.SignatureVerificationError, ValueError) as exc:
            raise InvalidBillingSignature(
                "The Stripe-Signature header does not match the body, or it is too old"
            ) from exc
        data = event.to_dict()
        return BillingWebhook(id=data["id"], type=data["type"], data=data["data"]["object"])

    async def create_customer(self, *, org_id: uuid.UUID, name: str) -> str:
        try:
            customer = await self._client.v1.customers.create_async(
                {"name": name, "metadata": {ORG_METADATA_KEY: str(org_id)}},
                # Stripe keeps idempotency keys a day: a retried request gets the same customer.
                {"idempotency_key": f"touchstone-customer-{org_id}"},
            )
        except stripe.StripeError as exc:
            raise _unavailable(exc) from exc
        customer_id: str = customer.id
        return customer_id

    async def claim_customer(self, customer_id: str, org_id: uuid.UUID) -> None:
        try:
            customer = await self._client.v1.customers.retrieve_async(customer_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                raise UnknownCustomer(f"Stripe has no customer {customer_id}") from exc
            raise _unavailable(exc) from exc
        except stripe.StripeError as exc:
            raise _unavailable(exc) from exc
        found = customer.to_dict()
        if found.get("deleted"):
            raise UnknownCustomer(f"Stripe customer {customer_id} was deleted")
        owner = (found.get("metadata") or {}).get(ORG_METADATA_KEY)
        if owner == str(org_id):
            return
        if owner:
            raise CustomerOfAnotherOrg(
                f"Stripe customer {customer_id} is tagged with another organization"
            )
        try:
            await self._client.v1.customers.update_async(
                customer_id, {"metadata": {ORG_METADATA_KEY: str(org_id)}}
            )
        except stripe.StripeError as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: stripe.StripeError) -> BillingProviderUnavailable:
    log.warning("billing_provider_error", error=type(exc).__name__, code=exc.code)
    return BillingProviderUnavailable(f"Stripe answered {type(exc).__name__}; try again later")


def billing_engine(settings: Settings) -> BillingEngine:
    if settings.billing_provider == "stripe":
        return StripeBilling(settings)
    return DisabledBilling()
