"""Live events inside one API process: subscribers per org, bounded queues, slow ones dropped.

Events arrive from PostgreSQL NOTIFY (or Redis pub/sub when configured), so every API
process serves the same streams whichever process the relay ran in.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

log = structlog.get_logger("touchstone.events")
TOPIC_FILTER = re.compile(r"^[a-z_]+(\.[a-z_]+)*(\.\*)?$")


@dataclass(frozen=True)
class LiveEvent:
    seq: int
    event_id: str
    org_id: uuid.UUID
    topic: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any]
    created_at: str

    @classmethod
    def from_row(cls, row: Any) -> LiveEvent:
        return cls(
            seq=int(row["seq"]),
            event_id=str(row["event_id"]),
            org_id=uuid.UUID(str(row["org_id"])),
            topic=row["topic"],
            aggregate_type=row["aggregate_type"],
            aggregate_id=row["aggregate_id"],
            payload=row["payload"],
            created_at=_iso(row["created_at"]),
        )

    def body(self) -> dict[str, Any]:
        """What clients receive (the org is implied by the stream)."""
        return {
            "id": self.seq,
            "event_id": self.event_id,
            "topic": self.topic,
            "aggregate": {"type": self.aggregate_type, "id": self.aggregate_id},
            "data": self.payload,
            "created_at": self.created_at,
        }

    def wire(self) -> dict[str, Any]:
        """The form that crosses processes (NOTIFY and Redis carry the same fields)."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "org_id": str(self.org_id),
            "topic": self.topic,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "payload": self.payload,
            "created_at": self.created_at,
        }

    def sse(self) -> str:
        return f"id: {self.seq}\nevent: {self.topic}\ndata: {json.dumps(self.body())}\n\n"


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def topic_matches(filters: frozenset[str], topic: str) -> bool:
    if not filters:
        return True
    return any(topic == f or (f.endswith(".*") and topic.startswith(f[:-1])) for f in filters)


@dataclass(eq=False)
class Subscription:
    org_id: uuid.UUID
    topics: frozenset[str]
    queue: asyncio.Queue[LiveEvent | None]
    consumer: asyncio.Task[Any] | None = field(default=None)
    dropped: bool = False

    async def next(self) -> LiveEvent | None:
        """The next event, or None when the subscription was dropped for falling behind."""
        return await self.queue.get()


class EventHub:
    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._subscriptions: dict[uuid.UUID, set[Subscription]] = defaultdict(set)

    def subscribe(self, org_id: uuid.UUID, topics: Iterable[str]) -> Subscription:
        subscription = Subscription(
            org_id, frozenset(topics), asyncio.Queue(self.queue_size), asyncio.current_task()
        )
        self._subscriptions[org_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscriptions.get(subscription.org_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscriptions[subscription.org_id]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscriptions.values())

    def dispatch(self, event: LiveEvent) -> None:
        for subscription in list(self._subscriptions.get(event.org_id, ())):
            if not topic_matches(subscription.topics, event.topic):
                continue
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(subscription)

    def _drop(self, subscription: Subscription) -> None:
        """A client that does not read loses its stream, never the process its memory."""
        log.warning("slow_event_subscriber_dropped", org_id=str(subscription.org_id))
        subscription.dropped = True
        self.unsubscribe(subscription)
        while not subscription.queue.empty():
            subscription.queue.get_nowait()
        subscription.queue.put_nowait(None)
        if (
            subscription.consumer is not None
            and subscription.consumer is not asyncio.current_task()
        ):
            subscription.consumer.cancel()
