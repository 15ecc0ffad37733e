"""Domain events through a transactional outbox, delivered at least once, in order.

    from touchstone.core.events import publish

    await publish(session, principal.org_id, "appraisal.completed",
                  aggregate=("appraisal", appraisal.id), data={"karat": "22K"})

The event is a row in the request's transaction: it exists if and only if the change does.
The relay then numbers it (`seq`, the stream's event id) and hands it to live streams
(SSE / WebSocket, every API process) and to the registered consumers such as webhooks.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.events.models import OutboxEvent

OUTBOX_CHANNEL = "touchstone_outbox"
EVENTS_CHANNEL = "touchstone_events"
REDIS_CHANNEL = "touchstone:events"
MAX_PAYLOAD_BYTES = 4000
TOPIC = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


async def publish(
    session: AsyncSession,
    org_id: uuid.UUID,
    topic: str,
    *,
    aggregate: tuple[str, object],
    data: dict[str, Any],
) -> OutboxEvent:
    """Record an event in the current transaction. Keep `data` small: ids and summaries.

    Events travel through PostgreSQL NOTIFY (8 kB), so payloads are capped; clients fetch
    the full object by id.
    """
    if not TOPIC.match(topic):
        raise ValueError(f"topic {topic!r} must look like 'module.event'")
    if len(json.dumps(data, default=str)) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"event payload over {MAX_PAYLOAD_BYTES} bytes; send ids, not objects")
    aggregate_type, aggregate_id = aggregate
    event = OutboxEvent(
        org_id=org_id,
        event_id=uuid.uuid4(),
        topic=topic,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        payload=json.loads(json.dumps(data, default=str)),
    )
    session.add(event)
    # Delivered at commit only, so the relay wakes exactly when there is something to relay.
    await session.execute(text(f"select pg_notify('{OUTBOX_CHANNEL}', '')"))
    return event


__all__ = ["EVENTS_CHANNEL", "OUTBOX_CHANNEL", "REDIS_CHANNEL", "OutboxEvent", "publish"]
