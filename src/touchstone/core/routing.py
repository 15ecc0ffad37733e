"""How a request meets its route: the body limit and the credential before the body, and
405 answers that name every method of the path.

FastAPI reads and parses a route's body before it runs any dependency, so `authenticate`
alone refuses an anonymous 60 MB JSON body only after reading it. `LimitedRoute`, the route
class of every router, acts on a request it has matched before FastAPI reads a byte:

1. a route that takes a body and needs a credential authenticates first, up to the database
   (`deps.authenticate`: a credential, the JWT's signature and expiry or the API key's
   shape, the rate limits; its later calls reuse it). An upload route also checks the
   credential in the database: a well-shaped API key costs an attacker nothing to make, and
   the body it would let in is hundreds of megabytes. A public route that takes a body
   counts the caller's address first, so a client over its limit is refused unread too;
2. a declared Content-Length over the route's limit is a 413;
3. the body is counted as it streams, and the first byte over the limit is a 413: nothing
   past it is parsed or written to a temporary file.

Every body is capped at `settings.max_body_bytes` (1 MiB): JSON, forms, anything. A route
that takes files declares its own, larger limit with `@upload_limit`, next to its path, and
that limit applies to its multipart/form-data bodies only. `bind_routes` computes each
route's rule once per app, from the settings and the route as included (its router's
dependencies too), and refuses to build an app with an API route of another class.

Why not FastAPI's `max_body_size=`: its value is fixed when the module is imported, where
ours come from the settings (and tests build apps with other ones), and its Content-Length
check turns whatever the route answers, the 401 sent before the body included, into a
plain-text 413.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, APIRouter, RouteContext, iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from touchstone.core.config import Settings
from touchstone.core.db import enter
from touchstone.core.deps import authenticate, authenticates, dependency_calls, get_database
from touchstone.core.errors import PayloadTooLarge, http_error
from touchstone.core.ratelimit import limit_by_address

UploadLimit = Callable[[Settings], int]
"""An upload route's body limit, in bytes, for the app's settings."""
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
_UPLOAD_LIMIT = "__upload_limit__"
_MULTIPART = b"multipart/form-data"


def upload_limit(limit: UploadLimit) -> Callable[[Endpoint], Endpoint]:
    """Declare, on an endpoint that takes files, the largest multipart body it accepts.

    Apply it under the route decorator. Any other body sent to the route, JSON included,
    keeps the small default.
    """

    def declare(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _UPLOAD_LIMIT, limit)
        return endpoint

    return declare


@dataclass(frozen=True, slots=True)
class BodyRule:
    """What a route accepts before and while its body is read."""

    max_bytes: int
    """Any body."""
    upload_bytes: int | None
    """multipart/form-data bodies, on a route that declared `@upload_limit`."""
    authenticate_first: bool
    """The route takes a body and needs a credential: check it before reading."""
    count_address_first: bool
    """A public route that takes a body and limits by address: count it before reading."""
    confirm_credential: bool
    """An upload route: check the credential in the database too before reading."""

    @classmethod
    def of(cls, route: RouteContext, settings: Settings) -> BodyRule:
        declared: UploadLimit | None = getattr(route.endpoint, _UPLOAD_LIMIT, None)
        upload_bytes = declared(settings) if declared is not None else None
        takes_body = route.body_field is not None  # its dependencies' forms too
        if upload_bytes is not None and not takes_body:
            raise TypeError(f"{route.path_format}: @upload_limit on a route without a body")
        calls = set(dependency_calls(route.dependant))
        authenticated = authenticates(route.dependant)
        return cls(
            max_bytes=settings.max_body_bytes,
            upload_bytes=upload_bytes,
            authenticate_first=authenticated and takes_body,
            count_address_first=not authenticated and takes_body and limit_by_address in calls,
            confirm_credential=authenticated and upload_bytes is not None,
        )

    def limit_for(self, content_type: bytes | None) -> int:
        if self.upload_bytes is not None and content_type and content_type.startswith(_MULTIPART):
            return self.upload_bytes
        return self.max_bytes


class LimitedRoute(APIRoute):
    """An `APIRoute` that applies its app's `BodyRule` before FastAPI reads the body, and
    refuses a path without its literal parts before its regex runs (`ApiRouter`)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.literal_parts = literal_parts(self.path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope["path"]
        for part in self.literal_parts:  # a loop: a generator would cost more than the test
            if part not in path:
                return Match.NONE, {}
        return super().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in (self.methods or ()):  # FastAPI answers 405
            await super().handle(scope, receive, send)
            return
        rule: BodyRule = scope["app"].state.body_rules[id(self)]
        if rule.authenticate_first:
            await _authenticate(Request(scope, receive), rule)
        elif rule.count_address_first:
            await limit_by_address(Request(scope, receive))
        declared, content_type = _body_headers(scope)
        limit = rule.limit_for(content_type)
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise PayloadTooLarge(f"Request body over {limit} bytes")
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI turns any other error raised while it reads
                    # the body into a 400 "error parsing the body".
                    raise HTTPException(413, f"Request body over {limit} bytes")
            return message

        await super().handle(scope, counted, send)


def literal_parts(path: str) -> tuple[str, ...]:
    """The text between a path's parameters (`/batches/{id}/report` -> `/batches/`,
    `/report`): a request path lacking one cannot match it."""
    return tuple(part for part in re.split(r"\{[^}]*\}", path) if part)


def _first_segment(path: str) -> str:
    """`/batches/{id}` -> `/batches`; "" for a path that starts with a parameter."""
    head = path.split("{", 1)[0]
    return "/" + head.split("/")[1] if head.count("/") and head != "/" else ""


class ApiRouter(APIRouter):
    """The router of every module: `LimitedRoute`s, and a request none of its routes can
    match refused in a few string comparisons.

    FastAPI (0.165) tries a request against each route of each included router in turn, at
    about 3.5 µs a route, and the router that matches twice over: with a hundred routes, a
    read late in the table paid 400 µs to be found, as much as the rest of the request. A
    router here first checks that the path holds the first segment of one of its routes
    (`/webhooks`, `/branches`…), and each route that it holds its literal parts, before
    FastAPI's regex matching runs; a miss is a miss either way, so only the cost changes.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(route_class=LimitedRoute, **kwargs)
        self._children: list[tuple[str, APIRouter]] = []
        self._segments: tuple[int, tuple[str, ...]] = (-1, ())

    def include_router(self, router: APIRouter, *, prefix: str = "", **kwargs: Any) -> None:
        super().include_router(router, prefix=prefix, **kwargs)
        self._children.append((self.prefix + prefix, router))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope["path"]
        for segment in self.segments():
            if segment in path:
                return super().matches(scope)
        return Match.NONE, {}

    def segments(self) -> tuple[str, ...]:
        """The first segment of each path it serves ("" matches any path: a route that
        starts with a parameter, a router included that is not an `ApiRouter`)."""
        built, segments = self._segments
        if built != len(self.routes):
            found = {
                _first_segment(path)
                for route in self.routes
                if isinstance(path := getattr(route, "path", None), str)
            }
            for prefix, child in self._children:
                inner = child.segments() if isinstance(child, ApiRouter) else ("",)
                found.update(
                    _first_segment(prefix + segment) if prefix else segment for segment in inner
                )
            segments = tuple(found)
            self._segments = (len(self.routes), segments)
        return segments


async def _authenticate(request: Request, rule: BodyRule) -> None:
    entry = await authenticate(request)
    if rule.confirm_credential:
        async with get_database(request).session() as session:
            await enter(session, entry)  # `Unauthorized` for a revoked or unknown credential


def _body_headers(scope: Scope) -> tuple[str | None, bytes | None]:
    """Content-Length (as sent) and Content-Type, in one pass over the headers."""
    length: str | None = None
    content_type: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.lower()
    return length, content_type


def require_authentication(router: APIRouter) -> None:
    """Refuse, at start-up, a route of an authenticated router that does not authenticate
    (through `SessionDep`, `tenant_read()` or `EntryDep`): it would answer anyone."""
    for route in iter_route_contexts(router.routes):
        if isinstance(route.original_route, APIRoute) and not authenticates(route.dependant):
            raise TypeError(
                f"{route.path_format}: a route of an authenticated router must authenticate "
                "(SessionDep, tenant_read() or EntryDep)"
            )


def bind_routes(app: FastAPI, settings: Settings) -> None:
    """Every API route's body rule, and the routes a 405 looks through for `Allow`; an API
    route without body limits stops start-up."""
    routes = list(iter_route_contexts(app.routes))
    rules: dict[int, BodyRule] = {}
    for route in routes:
        original = route.original_route
        if not isinstance(original, APIRoute):
            continue
        if not isinstance(original, LimitedRoute):
            raise TypeError(
                f"{route.path_format}: API routes are LimitedRoutes "
                "(core.routing.ApiRouter), so their bodies have limits"
            )
        rule = BodyRule.of(route, settings)
        if rules.setdefault(id(original), rule) != rule:
            raise TypeError(f"{route.path_format}: included twice with different body rules")
    app.state.body_rules = rules
    app.add_exception_handler(405, _MethodNotAllowed(routes))


class _MethodNotAllowed:
    """A 405 whose `Allow` lists the methods of every route of the path: the route that
    answers knows only its own (`GET /batches` would name GET alone, not POST)."""

    def __init__(self, routes: Sequence[RouteContext]) -> None:
        self.routes = routes

    async def __call__(self, request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        methods = {
            method
            for route in self.routes
            if route.methods and route.matches(request.scope)[0] is not Match.NONE
            for method in route.methods
        }
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}
        return await http_error(request, exc)
