"""How `touchstone serve` runs uvicorn, and the limit it puts on each request's head.

One place for the options, so the CLI, the live-server tests and the benchmark baseline
serve HTTP the same way.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 32 * 1024
"""Request line and headers together (nginx's default total, twice h11's)."""
MAX_HEADER_FIELDS = 100
"""Header fields a request (gunicorn's default); browsers send about twenty."""
MAX_WEBSOCKET_MESSAGE_BYTES = 5 * 1024 * 1024
"""uvicorn assembles a whole WebSocket message before the app sees it (16 MiB by default);
the largest the app takes is a purity-test frame, 4 MiB, and it answers a larger one itself
up to this size."""
HEAD_TIMEOUT_S = 20.0
"""From a connection's opening, or a head's first byte, to the end of the head (Apache's
default); idle time between requests is uvicorn's keep-alive timeout."""


class TooManyHeaderFields(Exception):
    """Raised from a parser callback: httptools stops, and uvicorn answers 400 and closes."""


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over `MAX_HEAD_BYTES` (431) or
    with more than `MAX_HEADER_FIELDS` fields (400), or not finished within `HEAD_TIMEOUT_S`,
    and closing the connection.

    Why a subclass: uvicorn limits the head only on its h11 protocol
    (`h11_max_incomplete_event_size`), which is pure Python and slower on every request;
    httptools has no limit of its own and joins a header's pieces as they arrive, so a single
    64 MiB header held the event loop for 10 s and every other client waited. Here a head is
    fed to the parser only up to the limit; past it, the rest is parsed only if the head has
    ended. Neither protocol times a head out: a connection that never finishes one (or never
    sends a byte) was held forever, with its socket and what it had sent. It extends
    `data_received`, three parser callbacks and the connection's start and end; the rest is
    uvicorn's.
    """

    head_bytes = 0
    """Bytes of the current request's head fed to the parser so far."""
    reading_head = True
    head_timeout_s = HEAD_TIMEOUT_S
    head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.reading_head:
            super().data_received(data)
            return
        if self.head_deadline is None:  # the first byte of a request after the first
            self._start_head_deadline()
        room = MAX_HEAD_BYTES - self.head_bytes
        if len(data) <= room:
            self.head_bytes += len(data)
            super().data_received(data)
            return
        self.head_bytes = MAX_HEAD_BYTES
        super().data_received(data[:room])
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # the parser refused the request, or it became a WebSocket
        if self.reading_head:
            self._refuse_head()
            return
        self.data_received(data[room:])  # a body, or the next request's head

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADER_FIELDS:
            raise TooManyHeaderFields
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self._stop_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_head, self.head_bytes = True, 0

    def _start_head_deadline(self) -> None:
        self.head_deadline = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _stop_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_timed_out(self) -> None:
        self.head_deadline = None
        if self.reading_head and not self.transport.is_closing():
            self.logger.warning("Request head unfinished after %.0f s; closed", self.head_timeout_s)
            self.transport.close()

    def _refuse_head(self) -> None:
        self.logger.warning("Request head over %d bytes refused", MAX_HEAD_BYTES)
        body = json.dumps(
            {
                "type": "https://touchstone.dev/problems/request-head-too-large",
                "title": "Request header fields too large",
                "status": 431,
                "code": "request_head_too_large",
                "detail": f"The request line and headers may take {MAX_HEAD_BYTES} bytes",
            }
        ).encode()
        response = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        for name, value in self.server_state.default_headers:
            response += [name, b": ", value, b"\r\n"]
        response += [
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(response))
        self.transport.close()


def uvicorn_options() -> dict[str, Any]:
    """The uvicorn settings of `touchstone serve` besides the app, host, port and workers."""
    return {
        "http": HeadLimitedHttpToolsProtocol,
        "ws": "websockets-sansio",
        "ws_max_size": MAX_WEBSOCKET_MESSAGE_BYTES,
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        # Longer than clients' idle pools (httpx 5 s, browsers ~60 s, load balancers 60 s):
        # the client, not the server, closes an idle connection, so a request is never sent
        # down a connection the server is closing.
        "timeout_keep_alive": 75,
    }
