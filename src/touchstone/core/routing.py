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
from fastapi.routing import (
    APIRoute,
    APIRouter,
    APIWebSocketRoute,
    RouteContext,
    iter_route_contexts,
)
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
    refuses a path without its literal parts before its regex runs (`include_flat`)."""

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


class ApiRouter(APIRouter):
    """The router of every module: its routes are `LimitedRoute`s."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(route_class=LimitedRoute, **kwargs)


_ROUTE_SETTINGS = (
    "response_model",
    "status_code",
    "tags",
    "dependencies",
    "summary",
    "description",
    "response_description",
    "responses",
    "deprecated",
    "methods",
    "operation_id",
    "response_model_include",
    "response_model_exclude",
    "response_model_by_alias",
    "response_model_exclude_unset",
    "response_model_exclude_defaults",
    "response_model_exclude_none",
    "include_in_schema",
    "response_class",
    "name",
    "callbacks",
    "openapi_extra",
    "generate_unique_id_function",
    "strict_content_type",
    "max_body_size",
)
"""What a route keeps from its inclusion: `APIRouter.add_api_route`'s settings."""


def include_flat(app: FastAPI, router: APIRouter, *, prefix: str = "", **include: Any) -> None:
    """Add `router`'s routes to the app's own table, as `app.include_router` would include
    them (prefix, tags, dependencies, responses: the same OpenAPI document).

    FastAPI (0.165) includes a router lazily: every request walks the included router's
    routes twice (once to choose the router, once to choose its route), through a context
    object per route: about 35 µs plus 4 µs a route tried, for each level of nesting. In the
    app's table each route is tried once, and a `LimitedRoute` refuses a path without its
    literal parts in a few string comparisons before its regex runs.
    """
    staged = APIRouter()
    staged.include_router(router, prefix=prefix, **include)
    for route in iter_route_contexts(staged.routes):
        original, path, endpoint = route.original_route, route.path, route.endpoint
        if path is None or endpoint is None:
            raise TypeError(f"{original!r}: only API and WebSocket routes can be included flat")
        if isinstance(original, APIRoute):
            settings = {name: getattr(route, name) for name in _ROUTE_SETTINGS}
            app.router.add_api_route(
                path, endpoint, route_class_override=type(original), **settings
            )
        elif isinstance(original, APIWebSocketRoute):
            app.router.add_api_websocket_route(
                path, endpoint, name=route.name, dependencies=route.dependencies
            )
        else:
            raise TypeError(f"{path}: only API and WebSocket routes can be included flat")


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
