"""The WebSocket transport of the live purity test (the fallback when WebRTC cannot connect).

Binary messages are frames: a JPEG or PNG, optionally prefixed with `TSF1` and the frame's
capture time as a big-endian float64 in seconds (clients that send recorded clips use it so
the test runs on the clip's clock; otherwise the arrival time counts). Text messages are
JSON: `{"type": "ping"}` is answered with a pong. Every reply is JSON: `purity_status`
after each processed frame, `error` for a bad frame or message (the test goes on). How the
socket opens, talks and ends is `core.live_socket`'s.
"""

from __future__ import annotations

import contextlib
import struct
import time
import uuid
from typing import Annotated

from fastapi import Query, WebSocket, WebSocketDisconnect, status

from touchstone.appraisal.dependencies import TESTING
from touchstone.appraisal.exceptions import FrameTooLarge
from touchstone.appraisal.purity.frames import decode_frame
from touchstone.appraisal.purity.live.run import (
    MAX_FRAME_BYTES,
    MAX_FRAME_PIXELS,
    DecodeFrame,
    PurityRun,
    drive,
)
from touchstone.core.errors import AppError
from touchstone.core.live_socket import LiveSocket
from touchstone.core.routing import ApiRouter

router = ApiRouter(tags=["appraisal"])
TIMESTAMP_MAGIC = b"TSF1"
_HEADER = struct.Struct(">4sd")


def frame_decoder(data: bytes, received_at: float) -> DecodeFrame:
    """Split off the optional timestamp header now; decode later, in the worker thread."""
    if data[:4] == TIMESTAMP_MAGIC and len(data) >= _HEADER.size:
        _, timestamp = _HEADER.unpack_from(data)
        payload = data[_HEADER.size :]
    else:
        timestamp, payload = received_at, data
    return lambda: (decode_frame(payload, max_pixels=MAX_FRAME_PIXELS), timestamp)


@router.websocket("/api/v1/purity-sessions/{test_id}/ws")
async def purity_websocket(
    websocket: WebSocket,
    test_id: uuid.UUID,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> None:
    """Stream a purity test: JPEG frames in, JSON statuses out; closes when it completes.

    When the tester's credential ends (4401) or loses `purity:test` (1008), within
    `STREAM_RECHECK_SECONDS`, the test is left interrupted (resumable), an `error` message
    says why and the socket closes with the error's code as the reason."""
    socket = await LiveSocket.open(websocket, access_token, TESTING)
    if socket is None:
        return
    state = websocket.app.state
    try:
        run = await PurityRun.open(
            state.database,
            state.storage,
            state.settings,
            socket.authorization.principal,
            test_id,
            "websocket",
            socket.send,
        )
    except AppError as error:
        await socket.end(error, status.WS_1008_POLICY_VIOLATION)
        return

    def on_frame(data: bytes) -> None:
        run.frames.put(frame_decoder(data, time.monotonic()))

    ended: AppError | None = None

    async def receive_while_authorized() -> None:
        nonlocal ended
        ended = await socket.authorization.guard(
            socket.receive_frames(MAX_FRAME_BYTES, on_frame, FrameTooLarge, socket.send)
        )

    # A client that hangs up as soon as it reads "completed" makes the last send or the
    # close fail; that is the end of the conversation, not a server error.
    with contextlib.suppress(WebSocketDisconnect):
        await drive(run, receive_while_authorized)
        if run.finished and not run.client_gone:
            await websocket.close(code=status.WS_1000_NORMAL_CLOSURE, reason="completed")
        elif ended is not None:
            await socket.end(ended)
