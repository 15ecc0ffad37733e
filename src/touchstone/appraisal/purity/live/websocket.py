"""The WebSocket transport of the live purity test (the fallback when WebRTC cannot connect).

Binary messages are frames: a JPEG or PNG, optionally prefixed with `TSF1` and the frame's
capture time as a big-endian float64 in seconds (clients that send recorded clips use it so
the test runs on the clip's clock; otherwise the arrival time counts). Text messages are
JSON: `{"type": "ping"}` is answered with a pong. Every reply is JSON: `purity_status`
after each processed frame, `error` for a bad frame or message (the test goes on).

Browsers cannot set headers on a WebSocket, so `?access_token=` is accepted, as on the
event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
import uuid
from typing import Annotated, Any

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
    dumps,
    error_message,
)
from touchstone.core.errors import AppError, InvalidInput
from touchstone.core.routing import ApiRouter
from touchstone.core.stream_auth import authorize_websocket, close_code

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
    state = websocket.app.state
    try:
        authorization = await authorize_websocket(websocket, access_token, TESTING)
    except AppError as error:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=error.code)
        return
    await websocket.accept()
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await websocket.send_text(dumps(message))

    try:
        run = await PurityRun.open(
            state.database,
            state.storage,
            state.settings,
            authorization.principal,
            test_id,
            "websocket",
            send,
        )
    except AppError as error:
        await send(error_message(error))
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=error.code)
        return

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
                    await send(error_message(too_large))
                else:
                    run.frames.put(frame_decoder(data, time.monotonic()))
                continue
            await _answer_text(message.get("text") or "", send)

    ended: AppError | None = None

    async def receive_while_authorized() -> None:
        nonlocal ended
        ended = await authorization.guard(receive())

    # A client that hangs up as soon as it reads "completed" makes the last send or the
    # close fail; that is the end of the conversation, not a server error.
    with contextlib.suppress(WebSocketDisconnect):
        await drive(run, receive_while_authorized)
        if run.finished and not run.client_gone:
            await websocket.close(code=status.WS_1000_NORMAL_CLOSURE, reason="completed")
        elif ended is not None:
            await send(error_message(ended))
            await websocket.close(code=close_code(ended), reason=ended.code)


async def _answer_text(text: str, send: Any) -> None:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("type") == "ping":
        await send({"type": "pong"})
        return
    await send(error_message(InvalidInput("Send frames as binary messages; text takes only ping")))
