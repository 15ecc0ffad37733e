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

from fastapi import Header, Query, Request, WebSocket, WebSocketDisconnect, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.datastructures import State

from touchstone.core.auth import (
    Authenticator,
    Principal,
    TenantEntry,
)
from touchstone.core.db import Database, enter
from touchstone.core.deps import EntryDep
from touchstone.core.errors import AppError, InvalidInput
from touchstone.core.events.hub import TOPIC_FILTER, EventHub, LiveEvent, topic_matches
from touchstone.core.events.models import OutboxEvent
from touchstone.core.permissions import BRANCH_SCOPED_TOPICS, TOPIC_PERMISSIONS
from touchstone.core.reads import read_for
from touchstone.core.routing import ApiRouter
from touchstone.core.stream_auth import StreamAuthorization, close_code, websocket_credential

router = ApiRouter(tags=["events"])
websocket_router = ApiRouter(tags=["events"])
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
    """A module's events need its read permission; a branch's events stay in the branch.

    Fail closed: an event of a branch-scoped module that does not say its branch reaches
    no branch-bound member (a publisher that forgot `branch_id` leaks nothing)."""
    module = event.topic.partition(".")[0]
    needed = TOPIC_PERMISSIONS.get(module)
    if needed is not None and not principal.can(needed):
        return False
    scope = principal.branch_scope
    if scope is None:
        return True
    branch = event.payload.get("branch_id")
    if branch is None:
        return module not in BRANCH_SCOPED_TOPICS
    return bool(branch == str(scope))


def served_permissions(principal: Principal, topics: frozenset[str]) -> frozenset[str]:
    """The module permissions a stream delivers events under: those of the modules its
    filters name (every module without a filter) that the principal holds. Losing one of
    them ends the stream (`StreamAuthorization`)."""
    modules = {t.partition(".")[0] for t in topics} if topics else TOPIC_PERMISSIONS.keys()
    needed = {TOPIC_PERMISSIONS[m] for m in modules if m in TOPIC_PERMISSIONS}
    return frozenset(needed) & principal.permissions


def stream_authorization(
    state: State, entry: TenantEntry, principal: Principal, topics: frozenset[str]
) -> StreamAuthorization:
    return StreamAuthorization(
        state.database,
        entry,
        principal,
        served_permissions(principal, topics),
        state.settings.stream_recheck_seconds,
    )


async def follow(
    hub: EventHub,
    database: Database,
    authorization: StreamAuthorization,
    topics: frozenset[str],
    after: int | None,
    heartbeat: float,
) -> AsyncIterator[LiveEvent | None]:
    """Replay, then live events the principal may see; yields None when a keep-alive is
    due. Ends if dropped; raises the `AppError` that ended the authorization.

    The authorization is re-checked here, between events, when it is due (a busy stream
    included), rather than by a second task racing the generator: no event is sent after
    the check that would have refused it."""
    principal = authorization.principal
    org_id = principal.org_id
    subscription = hub.subscribe(org_id, topics)  # before replay, so nothing slips between
    try:
        last = after or 0
        if after is not None:
            async for event in replay(database, org_id, topics, after):
                last = event.seq
                if visible_to(principal, event):
                    yield event
        loop = asyncio.get_running_loop()
        keep_alive_at = loop.time() + heartbeat
        while True:
            if authorization.due_in() == 0:
                await authorization.check()
            if loop.time() >= keep_alive_at:
                yield None
                keep_alive_at = loop.time() + heartbeat
            wait = min(keep_alive_at - loop.time(), authorization.due_in())
            try:
                live = await asyncio.wait_for(subscription.next(), max(wait, 0.0))
            except TimeoutError:
                continue
            if live is None:
                return
            keep_alive_at = loop.time() + heartbeat
            if live.seq > last:
                last = live.seq
                if visible_to(principal, live):
                    yield live
    finally:
        hub.unsubscribe(subscription)


def stream_ended(error: AppError) -> str:
    """The last message of an event stream its authorization ended (no `id:`: it is not an
    event to resume after)."""
    body = {"code": error.code, "status": error.status, "detail": error.detail}
    return f"event: stream_ended\ndata: {json.dumps(body)}\n\n"


@router.get("/events", response_class=StreamingResponse)
async def server_sent_events(
    request: Request,
    entry: EntryDep,
    topics: TopicsQuery = None,
    last_event_id: LastEventIdQuery = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """`text/event-stream` of this org's events (`id:` is the resume point).

    The stream ends, with a `stream_ended` event naming the reason, within
    `STREAM_RECHECK_SECONDS` of the credential ending (logout, deactivation, a revoked key,
    the token's expiry) or of the member losing a permission the stream serves."""
    read = read_for(request, entry, None)
    await read.fetch(lambda _: [])  # the caller, confirmed in one round trip
    assert read.principal is not None
    filters = parse_topics(topics)
    after = parse_last_event_id(last_event_id_header or last_event_id)
    state = request.app.state
    authorization = stream_authorization(state, entry, read.principal, filters)

    async def body() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        try:
            async for event in follow(
                state.event_hub,
                state.database,
                authorization,
                filters,
                after,
                state.settings.event_heartbeat_seconds,
            ):
                yield event.sse() if event is not None else ": keep-alive\n\n"
        except AppError as error:
            yield stream_ended(error)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@websocket_router.websocket("/ws")
async def websocket_events(
    websocket: WebSocket,
    topics: TopicsQuery = None,
    last_event_id: LastEventIdQuery = None,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> None:
    """JSON messages of this org's events; the same resume rules as `/events`.

    Closed with 4401 when the credential ends, 1008 when a permission the stream serves is
    removed (the reason is the error's code), within `STREAM_RECHECK_SECONDS`."""
    state = websocket.app.state
    credential = websocket_credential(websocket, access_token)
    try:
        filters = parse_topics(topics)
        after = parse_last_event_id(last_event_id)
        if credential is None:
            raise InvalidInput("Send a bearer token, an X-API-Key header or access_token")
        authenticator: Authenticator = state.authenticator
        entry = authenticator.entry(credential)
        async with state.database.transaction() as session:
            principal = await enter(session, entry)
    except AppError as error:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=error.code)
        return
    authorization = stream_authorization(state, entry, principal, filters)
    await websocket.accept()

    async def pump() -> None:
        async for event in follow(
            state.event_hub,
            state.database,
            authorization,
            filters,
            after,
            state.settings.event_heartbeat_seconds,
        ):
            if event is not None:
                await websocket.send_text(json.dumps(event.body()))

    sender, reader = asyncio.create_task(pump()), asyncio.create_task(_discard_incoming(websocket))
    try:
        await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
        if sender.done() and not sender.cancelled():
            ended = sender.exception()
            if ended is None:
                await websocket.close(code=status.WS_1013_TRY_AGAIN_LATER, reason="too slow")
            elif isinstance(ended, AppError):  # the authorization ended (4401, 1008)
                await websocket.close(code=close_code(ended), reason=ended.code)
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
