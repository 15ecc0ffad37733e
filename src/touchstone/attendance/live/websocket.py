"""The camera's WebSocket (`core.live_socket`): authenticated and kept authorized as the
purity test's socket is; frames in, one message per analysed frame out."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated

from fastapi import Query, WebSocket, WebSocketDisconnect, status

from touchstone.attendance.exceptions import FrameTooLarge
from touchstone.attendance.live.run import MAX_FRAME_BYTES, CameraRun
from touchstone.core.errors import AppError
from touchstone.core.live_socket import LiveSocket
from touchstone.core.routing import ApiRouter

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
    socket = await LiveSocket.open(websocket, access_token, MARKING)
    if socket is None:
        return
    with contextlib.suppress(WebSocketDisconnect):
        try:
            state = websocket.app.state
            run = await CameraRun.open(
                state.database,
                state.settings,
                socket.authorization.principal,
                session_id,
                socket.send,
            )
        except AppError as error:
            await socket.end(error, status.WS_1008_POLICY_VIOLATION)
            return
        ended = await _stream(socket, run)
        if ended is not None:
            await socket.end(ended)


async def _stream(socket: LiveSocket, run: CameraRun) -> AppError | None:
    """Receive while the authorization holds and analyse alongside; why it ended, if not by
    the client hanging up."""
    receive = socket.receive_frames(MAX_FRAME_BYTES, run.frames.put, FrameTooLarge, run.push)
    receiver = asyncio.create_task(socket.authorization.guard(receive))
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
