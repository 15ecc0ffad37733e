"""The consumers the outbox relay hands every new event to (inside its transaction)."""

from touchstone.core.events.relay import EventConsumer

EVENT_CONSUMERS: list[EventConsumer] = []
