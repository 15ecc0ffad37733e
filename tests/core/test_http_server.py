"""The HTTP server of `touchstone serve` (uvicorn with core.http_server's options), on a real
socket: a request head over the limit is refused without holding up other clients.

The server runs in a thread with its own event loop, as `touchstone serve` runs it; the
clients are plain sockets, so the test controls exactly which bytes are sent.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from tests.core.events.conftest import free_port
from touchstone.core.config import Settings
from touchstone.core.http_server import (
    MAX_HEAD_BYTES,
    MAX_HEADER_FIELDS,
    MAX_WEBSOCKET_MESSAGE_BYTES,
    HeadLimitedHttpToolsProtocol,
    uvicorn_options,
)
from touchstone.main import create_app

GUARD_S = 60
"""Socket timeouts, so a broken server fails the test instead of hanging it (not asserted)."""


@contextmanager
def serving(app: ASGIApp, **overrides: Any) -> Iterator[int]:
    """`touchstone serve`'s uvicorn options; no lifespan: /health/live needs no database."""
    port = free_port()
    options = uvicorn_options() | overrides
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.02):
        assert thread.is_alive(), "the server failed to start"
        if server.started:
            started.set()
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(GUARD_S)


@pytest.fixture(scope="module")
def port(settings: Settings) -> Iterator[int]:
    with serving(create_app(settings)) as port:
        yield port


def head(*fields: str, path: str = "/health/live") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send(port: int, data: bytes) -> bytes:
    """Send `data`, then read until the server closes or answers in full."""
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) as sock:
        sock.sendall(data)
        return read_response(sock)


def read_response(sock: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    head_part, _, body = received.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head_part.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head_part + b"\r\n\r\n" + body


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def test_a_head_over_the_limit_is_refused_with_431(port: int) -> None:
    """Exactly one byte over, never finished: the server has read every byte when it
    refuses, so its answer reaches the client whole."""
    unfinished = b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Big: "
    unfinished += b"a" * (MAX_HEAD_BYTES + 1 - len(unfinished))
    response = send(port, unfinished)
    assert status(response) == 431, response[:200]
    assert b"application/problem+json" in response
    assert b'"code": "request_head_too_large"' in response


def test_a_long_request_line_is_refused_too(port: int) -> None:
    line = b"GET /health/live?" + b"q" * MAX_HEAD_BYTES
    assert status(send(port, line)) == 431


def test_too_many_header_fields_are_refused(port: int) -> None:
    fields = [f"X-Field-{n}: {n}" for n in range(MAX_HEADER_FIELDS + 1)]
    assert status(send(port, head(*fields))) == 400


def test_heads_within_the_limits_are_served(port: int) -> None:
    """Near both limits, and a body past the head's limit (only the head counts); two
    requests on one connection, each near the limit (the count starts again)."""
    fields = [f"X-Field-{n}: {n}" for n in range(MAX_HEADER_FIELDS - 2)]
    fields.append("X-Big: " + "a" * (MAX_HEAD_BYTES - len(head(*fields)) - 20))
    near = head(*fields)
    assert len(near) < MAX_HEAD_BYTES
    assert status(send(port, near)) == 200
    body = b"x" * (4 * MAX_HEAD_BYTES)
    post = f"POST /health/live HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n"
    assert status(send(port, post.encode() + body)) == 405  # the route's answer, not 431
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) as sock:
        for _ in range(2):
            sock.sendall(near)
            assert status(read_response(sock)) == 200


def test_a_huge_header_does_not_hold_up_other_clients(port: int) -> None:
    """8 MiB of header from one client while others make ordinary requests: it is refused
    (431, or the connection closed under it), and every other request is answered."""

    def attack() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) as sock:
            try:
                sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Big: ")
                for _ in range(128):
                    sock.sendall(b"a" * 65536)
                sock.sendall(b"\r\n\r\n")
                return read_response(sock)
            except (BrokenPipeError, ConnectionResetError):
                return b"closed"

    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=GUARD_S) as client:
        attacker = pool.submit(attack)
        answers = [client.get(f"http://127.0.0.1:{port}/health/live") for _ in range(20)]
        refused = attacker.result()
    assert [answer.status_code for answer in answers] == [200] * 20
    assert refused == b"closed" or status(refused) == 431, refused[:200]


class QuickHeadTimeout(HeadLimitedHttpToolsProtocol):
    head_timeout_s = 0.2


def test_a_head_never_finished_is_closed(settings: Settings) -> None:
    """A connection that sends nothing, or half a head, is closed by the server (the test
    waits for that; it measures no time). Without the timeout it was held forever."""
    with serving(create_app(settings), http=QuickHeadTimeout) as port:
        for opening in (b"", b"GET /health/live HTTP/1.1\r\nHost: te"):
            with socket.create_connection(("127.0.0.1", port), timeout=GUARD_S) as sock:
                sock.sendall(opening)
                assert sock.recv(1024) == b"", opening


async def _message_sizes(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text(str(len(await websocket.receive_bytes())))


def test_a_websocket_message_over_the_limit_closes_the_socket() -> None:
    """uvicorn assembles a whole message before the app can refuse it: past the limit the
    server closes the socket (1009) instead of buffering it."""
    app = Starlette(routes=[WebSocketRoute("/sizes", _message_sizes)])
    with serving(app) as port, connect(f"ws://127.0.0.1:{port}/sizes") as socket_:
        socket_.send(b"x" * MAX_WEBSOCKET_MESSAGE_BYTES)
        assert socket_.recv(GUARD_S) == str(MAX_WEBSOCKET_MESSAGE_BYTES)
        socket_.send(b"x" * (MAX_WEBSOCKET_MESSAGE_BYTES + 1))
        with pytest.raises(ConnectionClosedError) as closed:
            socket_.recv(GUARD_S)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
