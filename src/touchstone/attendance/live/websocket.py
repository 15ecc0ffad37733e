"""The camera's WebSocket: authenticated and kept authorized as the purity test's socket is
(`core.stream_auth`); frames in, one message per analysed frame out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Annotated, Any

from fastapi import Query, WebSocket, WebSocketDisconnect, status

from touchstone.attendance.exceptions import FrameTooLarge
from touchstone.attendance.live.run import MAX_FRAME_BYTES, CameraRun, Send, error_message
from touchstone.core.errors import AppError, InvalidInput
from touchstone.core.routing import ApiRouter
from touchstone.core.stream_auth import StreamAuthorization, authorize_websocket, close_code

MARKING = "attendance:mark"
public_router = ApiRouter(tags=["attendance"])


@public_router.websocket("/attendance/sessions/{session_id}/camera")
async def camera_websocket(
    websocket: WebSocket,
    session_id: uuid.UUID,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> None:
    """Mark a session from a live camera: frames in, one `frame` message per analysed frame
    out (faces with boxes, names of recognised members or "unknown", who was just marked)."""
    try:
        authorization = await authorize_websocket(websocket, access_token, MARKING)
    except AppError as error:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=error.code)
        return
    await websocket.accept()
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_text(json.dumps(message, separators=(",", ":")))

    with contextlib.suppress(WebSocketDisconnect):
        try:
            state = websocket.app.state
            run = await CameraRun.open(
                state.database, state.settings, authorization.principal, session_id, send
            )
        except AppError as error:
            await send(error_message(error))
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=error.code)
            return
        ended = await _stream(websocket, authorization, run)
        if ended is not None:
            await send(error_message(ended))
            await websocket.close(code=close_code(ended), reason=ended.code)


async def _stream(
    websocket: WebSocket, authorization: StreamAuthorization, run: CameraRun
) -> AppError | None:
    """Receive while the authorization holds and analyse alongside; why it ended, if not by
    the client hanging up."""

    async def receive() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data: bytes | None = message.get("bytes")
            if data is not None:
                if len(data) > MAX_FRAME_BYTES:
                    too_large = FrameTooLarge(
                        f"The frame has {len(data)} bytes; at most {MAX_FRAME_BYTES}"
                    )
                    await run.push(error_message(too_large))
                else:
                    run.frames.put(data)
                continue
            await _answer_text(message.get("text") or "", run.push)

    receiver = asyncio.create_task(authorization.guard(receive()))
    processor = asyncio.create_task(run.process())
    try:
        await asyncio.wait({receiver, processor}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        run.frames.close()
        receiver.cancel()
        received, processed = await asyncio.gather(receiver, processor, return_exceptions=True)
    for outcome in (received, processed):
        if isinstance(outcome, AppError):
            return outcome  # the credential ended, or the session can no longer be marked
        if isinstance(outcome, BaseException) and not isinstance(
            outcome, asyncio.CancelledError | WebSocketDisconnect
        ):
            raise outcome
    return None


async def _answer_text(text: str, send: Send) -> None:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("type") == "ping":
        await send({"type": "pong"})
        return
    await send(error_message(InvalidInput("Send frames as binary messages; text takes only ping")))
