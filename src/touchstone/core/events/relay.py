"""The relay: numbers committed outbox events and hands them on, at least once.

Any number of processes may run it; an advisory lock inside `outbox_relay_batch()` makes
them take turns, so numbering stays gap-free and in commit order. Consumers (webhooks) run
in the same transaction as the numbering: an event is never numbered without them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from itertools import groupby

import psycopg
import structlog
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.db import Database, enter_tenant
from touchstone.core.events import OUTBOX_CHANNEL, REDIS_CHANNEL
from touchstone.core.events.hub import LiveEvent
from touchstone.core.postgres import libpq_dsn

log = structlog.get_logger("touchstone.events.relay")
EventConsumer = Callable[[AsyncSession, uuid.UUID, Sequence[LiveEvent]], Awaitable[None]]
"""Called per org with that org's new events, inside the relay's transaction and tenant."""
BATCH = 500
POLL_SECONDS = 1.0


class OutboxRelay:
    def __init__(
        self,
        database: Database,
        runtime_url: URL,
        consumers: Sequence[EventConsumer],
        redis: Redis | None = None,
    ) -> None:
        self.database = database
        self.runtime_url = runtime_url
        self.consumers = consumers
        self.redis = redis

    async def relay_once(self) -> int:
        async with self.database.transaction() as session:
            rows = (
                (await session.execute(text("select * from outbox_relay_batch(:n)"), {"n": BATCH}))
                .mappings()
                .all()
            )
            events = [LiveEvent.from_row(row) for row in rows]
            for org_id, org_events in groupby(events, key=lambda e: e.org_id):
                batch = list(org_events)
                await enter_tenant(session, org_id)
                for consumer in self.consumers:
                    await consumer(session, org_id, batch)
        if self.redis is not None and events:
            await self._fan_out(events)
        return len(events)

    async def _fan_out(self, events: Sequence[LiveEvent]) -> None:
        assert self.redis is not None
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.publish(REDIS_CHANNEL, json.dumps(event.wire()))
                await pipe.execute()
        except Exception as exc:  # streams resume from the outbox with Last-Event-ID
            log.warning("redis_fan_out_failed", error=type(exc).__name__)

    async def run_forever(self) -> None:
        """Relay whenever a commit NOTIFYs, and at least every second (a missed NOTIFY)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_dsn(self.runtime_url), autocommit=True
                ) as listener:
                    await listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    while True:
                        while await self.relay_once() == BATCH:
                            pass
                        async for _ in listener.notifies(timeout=POLL_SECONDS, stop_after=1):
                            break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database restarting: back off and reconnect
                log.warning("outbox_relay_error", error=type(exc).__name__, detail=str(exc)[:200])
                await asyncio.sleep(POLL_SECONDS)
