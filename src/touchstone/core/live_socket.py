"""The WebSocket that carries a live camera test (purity, attendance): one definition of how
it opens, talks and ends, so both sockets behave the same to a client.

It opens only for a caller holding the stream's permission and stays open only while that
holds (`core.stream_auth`); a refusal closes with 1008 and the error's code as the reason.
Binary messages are frames, refused above a size with an `error` message (the stream goes
on); text messages take only `{"type": "ping"}`, answered with a pong. Messages out are
compact JSON, sent one at a time (the frame loop and the receive loop both send).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import WebSocket, status

from touchstone.core.errors import AppError, InvalidInput
from touchstone.core.stream_auth import StreamAuthorization, authorize_websocket, close_code

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]


def error_message(error: AppError) -> Message:
    return {"type": "error", "code": error.code, "status": error.status, "detail": error.detail}


def dumps(message: Message) -> str:
    return json.dumps(message, separators=(",", ":"))


class LiveSocket:
    """An accepted, authorized socket."""

    def __init__(self, websocket: WebSocket, authorization: StreamAuthorization) -> None:
        self.websocket = websocket
        self.authorization = authorization
        self._sending = asyncio.Lock()

    @classmethod
    async def open(
        cls, websocket: WebSocket, access_token: str | None, permission: str
    ) -> LiveSocket | None:
        """Accept the socket for a caller holding `permission`; None once a refused one is
        closed. Browsers cannot set headers on a WebSocket, so `?access_token=` is taken."""
        try:
            authorization = await authorize_websocket(websocket, access_token, permission)
        except AppError as error:
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=error.code)
            return None
        await websocket.accept()
        return cls(websocket, authorization)

    async def send(self, message: Message) -> None:
        async with self._sending:
            await self.websocket.send_text(dumps(message))

    async def end(self, error: AppError, code: int | None = None) -> None:
        """Say why, then close with the error's code (4401 for an ended credential, 1008
        otherwise) and its name as the reason."""
        await self.send(error_message(error))
        await self.websocket.close(code=code or close_code(error), reason=error.code)

    async def receive_frames(
        self,
        max_bytes: int,
        on_frame: Callable[[bytes], None],
        too_large: Callable[[str], AppError],
        reply: Send,
    ) -> None:
        """Hand each frame to `on_frame` until the client hangs up; `reply` answers pings
        and refused messages."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data: bytes | None = message.get("bytes")
            if data is None:
                await reply(_answer_text(message.get("text") or ""))
            elif len(data) > max_bytes:
                await reply(
                    error_message(
                        too_large(f"The frame has {len(data)} bytes; at most {max_bytes}")
                    )
                )
            else:
                on_frame(data)


def _answer_text(text: str) -> Message:
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("type") == "ping":
        return {"type": "pong"}
    return error_message(InvalidInput("Send frames as binary messages; text takes only ping"))
