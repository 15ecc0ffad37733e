"""Pure ASGI middleware (BaseHTTPMiddleware costs ~100 µs a request; these cost a few)."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from touchstone.core.errors import PROBLEM_JSON
from touchstone.core.headers import API_CSP, BASE_HEADERS, PAGE_CSP
from touchstone.core.metrics import observe_request
from touchstone.core.ratelimit import window_headers

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CONTROL_IN_URL = re.compile(rb"%(0[0-9a-f]|1[0-9a-f]|7f)", re.IGNORECASE)
access_log = structlog.get_logger("touchstone.access")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def route_template(scope: Scope) -> str:
    """The matched route's full template (`/api/v1/users/{user_id}`), never the raw path:
    every router's routes sit in the app's own table with their prefixes
    (`core.routing.include_flat`), so the route Starlette matched has the whole template."""
    path = getattr(scope.get("route"), "path", None)
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    """For every request: its id, the log context, the access log line and HTTP metrics; and
    on every response, early refusals included, the security headers: `nosniff`, no
    referrer, no framing and a Content-Security-Policy, and the caller's `RateLimit` window
    once it was counted. A header the route set itself wins:
    the appraisal pages carry their own, tighter policies. One middleware rather than two,
    so a response passes through one `send` wrapper of ours, not two."""

    def __init__(self, app: ASGIApp, hsts_seconds: int = 0) -> None:
        self.app = app
        self.security = [(name.encode(), value.encode()) for name, value in BASE_HEADERS]
        if hsts_seconds:
            self.security.append((b"strict-transport-security", f"max-age={hsts_seconds}".encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        supplied = _header(scope, b"x-request-id")
        request_id = supplied if supplied and _REQUEST_ID.match(supplied) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                message["headers"] = self._headers(headers, request_id, window_headers(scope))
            await send(message)

        try:
            if scope["type"] == "http" and _has_control_characters(scope):
                await _send_problem(
                    send_with_headers,
                    422,
                    "invalid_input",
                    "Control characters in the URL",
                    request_id,
                )
                return
            await self.app(scope, receive, send_with_headers)
        finally:
            if scope["type"] == "http":
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                observe_request(scope["method"], route, status, elapsed)
                access_log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            structlog.contextvars.clear_contextvars()

    def _headers(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        request_id: str,
        rate_limit: list[tuple[bytes, bytes]],
    ) -> list[tuple[bytes, bytes]]:
        """The response's own headers (the request id replaced: early refusals carry it
        already), then each security and `RateLimit` header it did not set."""
        own = [h for h in headers if h[0].lower() != b"x-request-id"]
        present = {name.lower() for name, _ in own}
        extra = [(b"x-request-id", request_id.encode())]
        extra += (h for h in (*self.security, *rate_limit) if h[0] not in present)
        if b"content-security-policy" not in present:
            content_type = next((v for k, v in own if k.lower() == b"content-type"), b"")
            html = content_type.startswith(b"text/html")
            csp = PAGE_CSP if html else API_CSP
            extra.append((b"content-security-policy", csp.encode()))
        return own + extra


def _has_control_characters(scope: Scope) -> bool:
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    return bool(_CONTROL_IN_URL.search(scope["query_string"]) or _CONTROL_IN_URL.search(raw_path))


async def _send_problem(send: Send, status: int, code: str, title: str, request_id: str) -> None:
    body = json.dumps(
        {
            "type": f"https://touchstone.dev/problems/{code.replace('_', '-')}",
            "title": title,
            "status": status,
            "code": code,
            "request_id": request_id,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
