"""The consumers the outbox relay hands every new event to (inside its transaction)."""

from touchstone.core.events.relay import EventConsumer
from touchstone.webhooks.service import on_events as deliver_to_webhooks

EVENT_CONSUMERS: list[EventConsumer] = [deliver_to_webhooks]
