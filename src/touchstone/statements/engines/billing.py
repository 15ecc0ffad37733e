"""Usage billing behind one small interface: disabled by default, Stripe when configured.

The statements service meters processed pages itself (usage events, quotas); an engine
only forwards usage to the provider and reads the provider's signed webhooks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

import stripe

from touchstone.core.config import Settings
from touchstone.core.errors import AppError, NotFound


class InvalidBillingSignature(AppError):
    status, code, title = 400, "invalid_signature", "Invalid webhook signature"


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


class DisabledBilling:
    """Nothing is charged; usage is still metered and quotas still apply."""

    name = "disabled"

    async def report_usage(
        self, *, customer_id: str, quantity: int, identifier: str, timestamp: dt.datetime
    ) -> None:
        return None

    def verify_webhook(self, payload: bytes, signature: str | None) -> BillingWebhook:
        raise NotFound("Billing is not enabled")


class StripeBilling:
    """Pages go to a Stripe billing meter; webhooks are checked with Stripe's own scheme
    (HMAC-SHA256 over `t.payload`, timestamp tolerance)."""

    name = "stripe"

    def __init__(self, settings: Settings, client: stripe.StripeClient | None = None) -> None:
        assert settings.stripe_api_key, "Settings require it with BILLING_PROVIDER=stripe"
        assert settings.stripe_webhook_secret, "Settings require it with BILLING_PROVIDER=stripe"
        self._client = client or stripe.StripeClient(
            settings.stripe_api_key.get_secret_value(),
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


def billing_engine(settings: Settings) -> BillingEngine:
    if settings.billing_provider == "stripe":
        return StripeBilling(settings)
    return DisabledBilling()
