"""Feeds the process's EventHub from PostgreSQL NOTIFY, or from Redis when configured."""

from __future__ import annotations

import asyncio
import json

import psycopg
import structlog
from redis.asyncio import Redis
from sqlalchemy.engine import URL

from touchstone.core.events import EVENTS_CHANNEL, REDIS_CHANNEL
from touchstone.core.events.hub import EventHub, LiveEvent
from touchstone.core.postgres import libpq_dsn

log = structlog.get_logger("touchstone.events.listener")
RECONNECT_SECONDS = 1.0


def _dispatch(hub: EventHub, raw: str | bytes) -> None:
    try:
        hub.dispatch(LiveEvent.from_row(json.loads(raw)))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("malformed_live_event", error=type(exc).__name__)


async def listen_postgres(hub: EventHub, runtime_url: URL) -> None:
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                libpq_dsn(runtime_url), autocommit=True
            ) as connection:
                await connection.execute(f"LISTEN {EVENTS_CHANNEL}")
                async for notify in connection.notifies():
                    _dispatch(hub, notify.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database restarting; clients catch up with Last-Event-ID
            log.warning("event_listener_reconnecting", error=type(exc).__name__)
            await asyncio.sleep(RECONNECT_SECONDS)


async def listen_redis(hub: EventHub, redis: Redis) -> None:
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(REDIS_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        _dispatch(hub, message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("event_listener_reconnecting", source="redis", error=type(exc).__name__)
            await asyncio.sleep(RECONNECT_SECONDS)
