"""Outbox events reach live streams in order, per tenant, resumably, and never leak."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select
from websockets.asyncio.client import connect

from tests.conftest import Tenant, assert_problem, committed_tenant
from tests.core.events.conftest import LiveServer, serve
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events import OutboxEvent, publish


async def emit(committed: Database, tenant: Tenant, topic: str, **data: Any) -> uuid.UUID:
    async with committed.transaction(org_id=tenant.org_id) as session:
        event = await publish(session, tenant.org_id, topic, aggregate=("batch", "b-1"), data=data)
    return event.event_id


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse `id:` / `event:` / `data:` blocks of a text/event-stream."""
    block: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in block:
                yield {"id": int(block["id"]), "event": block["event"], **json.loads(block["data"])}
            block = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            block[field] = value


async def collect(
    server: LiveServer,
    tenant: Tenant,
    count: int,
    *,
    topics: str | None = None,
    last_event_id: int | None = None,
    ready: asyncio.Event | None = None,
) -> list[dict[str, Any]]:
    headers = dict(tenant.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    params = {"topics": topics} if topics else {}
    received: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        client.stream("GET", "/api/v1/events", headers=headers, params=params) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        if ready is not None:
            ready.set()
        async for event in sse_events(response):
            received.append(event)
            if len(received) == count:
                return received
    return received


async def subscribed(server: LiveServer, minimum: int) -> None:
    for _ in range(3000):  # 60 s at most: a busy machine is slow, not wrong
        if server.app.state.event_hub.subscriber_count >= minimum:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the stream never subscribed")


async def test_events_reach_their_tenant_in_order_and_no_one_else(
    live_server: LiveServer,
    committed: Database,
    tenant: Tenant,
    settings: Settings,
    live_client: httpx.AsyncClient,
) -> None:
    other = await committed_tenant(committed, settings, live_client)
    mine = asyncio.create_task(collect(live_server, tenant, 3))
    theirs = asyncio.create_task(collect(live_server, other, 1))
    await subscribed(live_server, 2)
    ids = [await emit(committed, tenant, "batch.progress", percent=p) for p in (10, 50, 90)]
    await emit(committed, other, "batch.progress", percent=1)
    received = await asyncio.wait_for(mine, 60)
    assert [e["data"]["percent"] for e in received] == [10, 50, 90]
    assert [e["event_id"] for e in received] == [str(i) for i in ids]
    assert received[0]["id"] < received[1]["id"] < received[2]["id"]
    assert received[0]["aggregate"] == {"type": "batch", "id": "b-1"}
    only_theirs = await asyncio.wait_for(theirs, 60)
    assert only_theirs[0]["data"] == {"percent": 1}


async def test_a_rolled_back_change_publishes_nothing(
    live_server: LiveServer, committed: Database, tenant: Tenant
) -> None:
    stream = asyncio.create_task(collect(live_server, tenant, 1))
    await subscribed(live_server, 1)
    with pytest.raises(RuntimeError):  # noqa: PT012 (the failing request is the block)
        async with committed.transaction(org_id=tenant.org_id) as session:
            await publish(session, tenant.org_id, "batch.failed", aggregate=("batch", 1), data={})
            raise RuntimeError("request failed")
    await emit(committed, tenant, "batch.done")
    received = await asyncio.wait_for(stream, 60)
    assert [e["event"] for e in received] == ["batch.done"]


async def test_resume_replays_missed_events_then_goes_live(
    live_server: LiveServer, committed: Database, tenant: Tenant
) -> None:
    first = asyncio.create_task(collect(live_server, tenant, 1))
    await subscribed(live_server, 1)
    await emit(committed, tenant, "batch.progress", percent=1)
    seen = (await asyncio.wait_for(first, 60))[0]["id"]
    for percent in (2, 3):  # while the client is away
        await emit(committed, tenant, "batch.progress", percent=percent)
    resumed = asyncio.create_task(collect(live_server, tenant, 3, last_event_id=seen))
    await subscribed(live_server, 1)
    await emit(committed, tenant, "batch.progress", percent=4)
    received = await asyncio.wait_for(resumed, 60)
    assert [e["data"]["percent"] for e in received] == [2, 3, 4]


async def test_topic_filters(live_server: LiveServer, committed: Database, tenant: Tenant) -> None:
    stream = asyncio.create_task(collect(live_server, tenant, 2, topics="batch.*,job.done"))
    await subscribed(live_server, 1)
    for topic in ("appraisal.completed", "batch.progress", "jobx.done", "job.done"):
        await emit(committed, tenant, topic)
    received = await asyncio.wait_for(stream, 60)
    assert [e["event"] for e in received] == ["batch.progress", "job.done"]


async def test_bad_resume_points_and_filters_are_refused_or_harmless(
    live_server: LiveServer,
    committed: Database,
    tenant: Tenant,
    settings: Settings,
    live_client: httpx.AsyncClient,
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        for headers, params in (
            ({"Last-Event-ID": "abc"}, {}),
            ({"Last-Event-ID": "-1"}, {}),
            ({}, {"topics": "../etc"}),
            ({}, {"last_event_id": "1e9"}),
        ):
            response = await client.get(
                "/api/v1/events", params=params, headers={**tenant.headers, **headers}
            )
            assert_problem(response, 422, "invalid_input")
        unauthenticated = await client.get("/api/v1/events")
        assert unauthenticated.status_code == 401
    # Another tenant's event id as a resume point only replays this tenant's later events.
    other = await committed_tenant(committed, settings, live_client)
    await emit(committed, other, "batch.secret", leaked=True)
    foreign_seq = None
    for _ in range(3000):  # until the relay has numbered it (60 s at most)
        async with committed.transaction(org_id=other.org_id) as session:
            foreign_seq = (
                await session.execute(
                    select(OutboxEvent.seq).where(OutboxEvent.org_id == other.org_id)
                )
            ).scalar()
        if foreign_seq is not None:
            break
        await asyncio.sleep(0.02)
    assert foreign_seq is not None
    stream = asyncio.create_task(collect(live_server, tenant, 1, last_event_id=foreign_seq - 1))
    await subscribed(live_server, 1)
    await emit(committed, tenant, "batch.mine")
    received = await asyncio.wait_for(stream, 60)
    assert all(e["event"] != "batch.secret" for e in received)


async def test_websocket_stream_and_refusals(
    live_server: LiveServer, committed: Database, tenant: Tenant
) -> None:
    url = f"{live_server.ws_url}/api/v1/ws?topics=batch.*&access_token={tenant.token}"
    async with connect(url) as socket:
        await subscribed(live_server, 1)
        await emit(committed, tenant, "batch.progress", percent=42)
        message = json.loads(await asyncio.wait_for(socket.recv(), 60))
        assert message["topic"] == "batch.progress"
        assert message["data"] == {"percent": 42}
    for bad in ("access_token=garbage", "", f"access_token={tenant.token}&last_event_id=x"):
        with pytest.raises(websockets.exceptions.WebSocketException):
            async with connect(f"{live_server.ws_url}/api/v1/ws?{bad}") as socket:
                await asyncio.wait_for(socket.recv(), 60)


async def test_a_client_that_never_reads_is_dropped_not_the_server(
    settings: Settings, committed: Database, tenant: Tenant
) -> None:
    small = settings.model_copy(update={"event_stream_queue_size": 20})
    async with serve(small, committed) as server:
        host, port = server.url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /api/v1/ws?access_token={tenant.token} HTTP/1.1\r\nHost: {host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await writer.drain()
        await subscribed(server, 1)  # handshake done; from now on this client reads nothing
        blob = "x" * 3500
        async with httpx.AsyncClient(base_url=server.url, timeout=10):
            for batch in range(40):
                async with committed.transaction(org_id=tenant.org_id) as session:
                    for _ in range(50):
                        await publish(
                            session,
                            tenant.org_id,
                            "batch.noise",
                            aggregate=("batch", batch),
                            data={"blob": blob},
                        )
                if server.app.state.event_hub.subscriber_count == 0:
                    break
                await asyncio.sleep(0.05)
        for _ in range(3000):  # 60 s at most: a busy machine is slow, not wrong
            if server.app.state.event_hub.subscriber_count == 0:
                break
            await asyncio.sleep(0.05)
        assert server.app.state.event_hub.subscriber_count == 0, "slow client still attached"
        healthy = asyncio.create_task(collect(server, tenant, 1, topics="batch.after"))
        await subscribed(server, 1)
        await emit(committed, tenant, "batch.after")
        assert (await asyncio.wait_for(healthy, 60))[0]["event"] == "batch.after"
        writer.close()


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="REDIS_URL is not set: no Redis to fan events out through",
)
async def test_redis_fans_events_out_to_every_api_process(
    settings: Settings, committed: Database, tenant: Tenant
) -> None:
    """Two API processes on Redis: each listens to Redis only, so B's client getting the
    event proves the fan-out, wherever the relay ran."""
    on_redis = settings.model_copy(update={"redis_url": os.environ["REDIS_URL"]})
    async with serve(on_redis, committed) as first, serve(on_redis, committed) as second:
        streams = [
            asyncio.create_task(collect(s, tenant, 1, topics="fan.out")) for s in (first, second)
        ]
        await subscribed(first, 1)
        await subscribed(second, 1)
        await emit(committed, tenant, "fan.out", n=1)
        received = [await asyncio.wait_for(stream, 60) for stream in streams]
    assert [r[0]["event"] for r in received] == ["fan.out", "fan.out"]
    assert received[0][0]["id"] == received[1][0]["id"]
