"""Live events for signed-in users: Server-Sent Events and WebSocket, always per tenant.

Both resume after `Last-Event-ID` (header, or `last_event_id` for clients that cannot set
headers): missed events are replayed from the outbox, then the stream goes live.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from touchstone.core.auth import API_KEY_PREFIX, Authenticator, Credential, Principal
from touchstone.core.db import Database, enter
from touchstone.core.deps import CurrentPrincipal
from touchstone.core.errors import AppError, InvalidInput
from touchstone.core.events.hub import TOPIC_FILTER, EventHub, LiveEvent, topic_matches
from touchstone.core.events.models import OutboxEvent
from touchstone.core.permissions import TOPIC_PERMISSIONS

router = APIRouter(tags=["events"])
websocket_router = APIRouter(tags=["events"])
REPLAY_PAGE = 500
MAX_TOPICS = 20

TopicsQuery = Annotated[
    str | None,
    Query(max_length=1000, description="Comma-separated topics; `appraisal.*` matches a prefix"),
]
LastEventIdQuery = Annotated[str | None, Query(max_length=20)]


def parse_topics(raw: str | None) -> frozenset[str]:
    topics = frozenset(t.strip() for t in (raw or "").split(",") if t.strip())
    if len(topics) > MAX_TOPICS or not all(TOPIC_FILTER.match(t) for t in topics):
        raise InvalidInput(f"topics must be up to {MAX_TOPICS} names like 'batch.progress'")
    return topics


def parse_last_event_id(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput("Last-Event-ID must be the id of an event this stream sent")
    return int(raw)


async def replay(
    database: Database, org_id: uuid.UUID, topics: frozenset[str], after: int
) -> AsyncIterator[LiveEvent]:
    """Events of this org after `after`, from the outbox, in delivery order."""
    while True:
        async with database.transaction(org_id=org_id) as session:
            rows = (
                (
                    await session.execute(
                        select(OutboxEvent)
                        .where(OutboxEvent.org_id == org_id, OutboxEvent.seq > after)
                        .order_by(OutboxEvent.seq)
                        .limit(REPLAY_PAGE)
                    )
                )
                .scalars()
                .all()
            )
        for row in rows:
            event = LiveEvent.from_row({c: getattr(row, c) for c in LiveEvent.__annotations__})
            after = event.seq
            if topic_matches(topics, event.topic):
                yield event
        if len(rows) < REPLAY_PAGE:
            return


def visible_to(principal: Principal, event: LiveEvent) -> bool:
    """A module's events need its read permission; a branch's events stay in the branch."""
    needed = TOPIC_PERMISSIONS.get(event.topic.partition(".")[0])
    if needed is not None and not principal.can(needed):
        return False
    scope, branch = principal.branch_scope, event.payload.get("branch_id")
    return scope is None or branch is None or branch == str(scope)


async def follow(
    hub: EventHub,
    database: Database,
    principal: Principal,
    topics: frozenset[str],
    after: int | None,
    heartbeat: float,
) -> AsyncIterator[LiveEvent | None]:
    """Replay, then live events the principal may see; yields None when a keep-alive is
    due. Ends if dropped."""
    org_id = principal.org_id
    subscription = hub.subscribe(org_id, topics)  # before replay, so nothing slips between
    try:
        last = after or 0
        if after is not None:
            async for event in replay(database, org_id, topics, after):
                last = event.seq
                if visible_to(principal, event):
                    yield event
        while True:
            try:
                live = await asyncio.wait_for(subscription.next(), heartbeat)
            except TimeoutError:
                yield None
                continue
            if live is None:
                return
            if live.seq > last:
                last = live.seq
                if visible_to(principal, live):
                    yield live
    finally:
        hub.unsubscribe(subscription)


@router.get("/events", response_class=StreamingResponse)
async def server_sent_events(
    request: Request,
    principal: CurrentPrincipal,
    topics: TopicsQuery = None,
    last_event_id: LastEventIdQuery = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """`text/event-stream` of this org's events (`id:` is the resume point)."""
    filters = parse_topics(topics)
    after = parse_last_event_id(last_event_id_header or last_event_id)
    state = request.app.state

    async def body() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        async for event in follow(
            state.event_hub,
            state.database,
            principal,
            filters,
            after,
            state.settings.event_heartbeat_seconds,
        ):
            yield event.sse() if event is not None else ": keep-alive\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _websocket_credential(websocket: WebSocket, access_token: str | None) -> Credential | None:
    """Browsers cannot set headers on a WebSocket, so `?access_token=` is accepted too."""
    if key := websocket.headers.get("x-api-key"):
        return Credential("api_key", key)
    authorization = websocket.headers.get("authorization", "")
    token = authorization.removeprefix("Bearer ").strip() if authorization else access_token
    if not token:
        return None
    return Credential("api_key" if token.startswith(API_KEY_PREFIX) else "access_token", token)


@websocket_router.websocket("/ws")
async def websocket_events(
    websocket: WebSocket,
    topics: TopicsQuery = None,
    last_event_id: LastEventIdQuery = None,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> None:
    """JSON messages of this org's events; the same resume rules as `/events`."""
    state = websocket.app.state
    credential = _websocket_credential(websocket, access_token)
    try:
        filters = parse_topics(topics)
        after = parse_last_event_id(last_event_id)
        if credential is None:
            raise InvalidInput("Send a bearer token, an X-API-Key header or access_token")
        authenticator: Authenticator = state.authenticator
        async with state.database.transaction() as session:
            principal = await enter(session, authenticator.entry(credential))
    except AppError as error:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=error.code)
        return
    await websocket.accept()

    async def pump() -> None:
        async for event in follow(
            state.event_hub,
            state.database,
            principal,
            filters,
            after,
            state.settings.event_heartbeat_seconds,
        ):
            if event is not None:
                await websocket.send_text(json.dumps(event.body()))

    sender, reader = asyncio.create_task(pump()), asyncio.create_task(_discard_incoming(websocket))
    try:
        await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
        if sender.done() and not sender.cancelled() and sender.exception() is None:
            await websocket.close(code=status.WS_1013_TRY_AGAIN_LATER, reason="too slow")
    except WebSocketDisconnect:
        return
    finally:
        for task in (sender, reader):
            task.cancel()
        await asyncio.gather(sender, reader, return_exceptions=True)


async def _discard_incoming(websocket: WebSocket) -> None:
    """Reading is how a disconnect is noticed; clients have nothing to say on this socket."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
