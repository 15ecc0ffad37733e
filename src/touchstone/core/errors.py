"""RFC 9457 problem details: one error shape for every failure."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import psycopg
import structlog
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from touchstone.core.headers import API_CSP, BASE_HEADERS

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("touchstone.errors")


class AppError(Exception):
    """Base of every expected failure; `code` is stable and documented for clients."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"
    keep_changes: bool = False
    """Commit the transaction anyway (e.g. revoking a token family while refusing the call)."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers
        self.extra = extra or {}


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Not allowed"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class InvalidInput(AppError):
    status, code, title = 422, "invalid_input", "Invalid input"


class TooManyRequests(AppError):
    status, code, title = 429, "rate_limited", "Too many requests"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(AppError):
    """The sniffed content type (never the client's claim) is not accepted by the route."""

    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class ServiceUnavailable(AppError):
    status, code, title = 503, "service_unavailable", "Service temporarily unavailable"


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


class Problem(BaseModel):
    """The body of every error, for the OpenAPI document (`problem_response` builds it).

    Extra members are allowed: `invalid_params` on 422, and whatever an `AppError` adds.
    """

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` documenting problem+json for `statuses`, so clients (and schemathesis)
    know every error a route can answer with."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "model": Problem,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def problem_response(
    request: Request | None,
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://touchstone.dev/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
        request_id = request.scope.get("state", {}).get("request_id")
        if request_id:
            body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _on_websocket_close(
    handler: Callable[[Request, Exception], Awaitable[JSONResponse]],
) -> Callable[[Request, Exception], Awaitable[Any]]:
    """Starlette hands WebSocket errors to the same handlers; an HTTP problem cannot be sent
    on a socket (the server then logs a RuntimeError), so a socket is closed with a code:
    1008 (policy violation) for the client's fault, 1013 (try again later) for the server's
    own trouble, a database or a full volume, as an HTTP client would get a 5xx."""

    async def handle(connection: Request, exc: Exception) -> Any:  # a response, or None
        if connection.scope["type"] != "websocket":
            return await handler(connection, exc)
        client_fault = isinstance(exc, AppError) and exc.status < 500
        reason = exc.code if isinstance(exc, AppError) else type(exc).__name__
        with contextlib.suppress(RuntimeError):  # already closed by the peer
            await WebSocket(connection.scope, connection.receive, connection._send).close(
                code=1008 if client_fault else 1013, reason=reason[:120]
            )
        return None

    return handle


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers=exc.headers,
        **exc.extra,
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own refusals (404, 405, 413 while reading a body) as problems."""
    assert isinstance(exc, StarletteHTTPException)
    title = str(exc.detail) if exc.detail else "Error"
    return problem_response(
        request,
        status=exc.status_code,
        code=_STATUS_CODES.get(exc.status_code, "http_error"),
        title=title,
        headers=getattr(exc, "headers", None),
    )


def _param_name(loc: tuple[Any, ...]) -> str:
    """`("query", "limit")` -> `limit`: the location goes to `in`, not into the name."""
    return ".".join(str(part) for part in loc[1:]) or (str(loc[0]) if loc else "body")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    invalid = [
        {
            "name": _param_name(tuple(err.get("loc", ()))),
            "in": str(err.get("loc", ["body"])[0]),
            "reason": err.get("msg", "invalid"),
        }
        for err in exc.errors()
    ]
    return problem_response(
        request,
        status=422,
        code="invalid_input",
        title="Invalid input",
        detail="The request has invalid or unexpected fields.",
        invalid_params=invalid,
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database_unavailable", error=type(exc).__name__)
    return problem_response(
        request,
        status=503,
        code="service_unavailable",
        title="Service temporarily unavailable",
        detail="The database cannot be reached; retry shortly.",
        headers={"Retry-After": "2"},
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this outside the request middleware: its log context is already cleared
    # and its response skips the middleware's headers (request id, security), so they are set
    # here.
    request_id = request.scope.get("state", {}).get("request_id")
    log.exception("unhandled_error", exc_info=exc, request_id=request_id)
    headers = dict(BASE_HEADERS) | {"Content-Security-Policy": API_CSP}
    if request_id:
        headers["X-Request-ID"] = request_id
    return problem_response(
        request,
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="Something went wrong on our side; quote the request id when reporting it.",
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _on_websocket_close(_app_error))
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    unavailable = _on_websocket_close(_database_unavailable)
    app.add_exception_handler(OperationalError, unavailable)
    app.add_exception_handler(InterfaceError, unavailable)
    # The same failures raised by psycopg itself, on the raw connection of `core.reads`.
    app.add_exception_handler(psycopg.OperationalError, unavailable)
    app.add_exception_handler(psycopg.InterfaceError, unavailable)
    # Unhandled errors on a socket never reach this handler: the server closes it with 1011.
    app.add_exception_handler(Exception, _unhandled)
