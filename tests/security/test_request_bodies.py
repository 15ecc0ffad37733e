"""Request bodies: refused before they are read when the caller has no credential, capped
small everywhere, and larger only on the upload routes that declare it (core.routing).

The requests are raw ASGI calls whose `receive` counts the bytes the app pulls, so "before
the body is read" is measured, not inferred from the status.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, params
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.types import Message

from tests.conftest import Tenant, login
from tests.security.world import API, PARAM, statement_pdf
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.deps import authenticates
from touchstone.core.routing import BodyRule
from touchstone.main import create_app

MiB = 1024 * 1024
CHUNK = 64 * 1024
"""What a server hands the app per `receive` (uvicorn passes on what each read returned)."""
NOBODY = uuid.UUID(int=1)
"""An id no object has: the requests must be refused before any lookup. Fixed, so every
xdist worker collects the same test ids."""
TRANSACTION = f"{API}/batches/{NOBODY}/transactions/{NOBODY}"
PASSWORD_ROUTE = f"{API}/batches/{NOBODY}/statements/{NOBODY}/password"
ITEMS = f"{API}/appraisals/{NOBODY}/items"
JSON = "application/json"
MULTIPART = "multipart/form-data; boundary=touchstone-test-boundary"
FILE_PART = (
    b"--touchstone-test-boundary\r\n"
    b'Content-Disposition: form-data; name="files"; filename="big.pdf"\r\n'
    b"Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
)
"""The start of a well-formed multipart body: a file part, whose content the rest fills."""

UPLOADS = {
    ("POST", "/api/v1/batches"): "statement PDFs: up to STATEMENTS_MAX_FILES of their size",
    ("PUT", "/api/v1/customers/{customer_id}/photo"): "a customer's photo",
    ("POST", "/api/v1/appraisals/{appraisal_id}/items/{item_id}/photos"): "an item's photo",
    ("POST", "/api/v1/attendance/people/{person_id}/faces"): "an enrolment photo",
    ("POST", "/api/v1/attendance/recognitions"): "a photo to recognise faces in",
    ("POST", "/api/v1/attendance/sessions/{session_id}/photos"): "a class photo",
    ("PUT", "/api/v1/arcontent/contents/{content_id}/marker"): "an AR marker image",
    ("PUT", "/api/v1/arcontent/contents/{content_id}/video"): "an AR overlay video",
    ("POST", "/api/v1/research/sources"): "a research source: a PDF, HTML, Markdown or text",
}
"""The only routes whose bodies may exceed `max_body_bytes`, each with its reason."""


@dataclass
class Exchange:
    """One request through the app: what it pulled of the body, and what it answered."""

    pulled: int = 0
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""


async def send_body(
    app: FastAPI,
    method: str,
    path: str,
    *,
    size: int,
    content_type: str,
    headers: dict[str, str] | None = None,
    declare_length: bool = True,
    content: bytes | None = None,
) -> Exchange:
    """`size` bytes of body, made as they are pulled (or `content`, of that size), declared
    by Content-Length or not (chunked, as a client streaming a body sends it)."""
    exchange = Exchange()
    sent = [(b"host", b"test"), (b"content-type", content_type.encode())]
    sent += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if declare_length:
        sent.append((b"content-length", str(size).encode()))
    else:
        sent.append((b"transfer-encoding", b"chunked"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": sent,
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "state": {},
    }

    start = FILE_PART if content_type == MULTIPART else b"["

    async def receive() -> Message:
        if exchange.pulled >= size:
            return {"type": "http.disconnect"}
        length = min(CHUNK, size - exchange.pulled)
        if content is not None:
            chunk = content[exchange.pulled : exchange.pulled + length]
        else:
            chunk = ((start if exchange.pulled == 0 else b"") + b"7" * length)[:length]
        exchange.pulled += length
        return {"type": "http.request", "body": chunk, "more_body": exchange.pulled < size}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            exchange.headers = dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            exchange.body += message.get("body", b"")

    await app(scope, receive, send)
    return exchange


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database)


def assert_refused(exchange: Exchange, status: int, pulled_at_most: int = 0) -> None:
    assert exchange.status == status, exchange.body
    assert exchange.headers[b"content-type"] == b"application/problem+json"
    assert exchange.pulled <= pulled_at_most, f"{exchange.pulled} bytes read before the {status}"


ANONYMOUS_BODIES = [
    ("PATCH", TRANSACTION, 60 * MiB, JSON),
    ("POST", f"{API}/batches", 200 * MiB, MULTIPART),
    ("PUT", f"{API}/customers/{NOBODY}/photo", 50 * MiB, MULTIPART),
    ("POST", ITEMS, 5 * MiB, JSON),
]


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("method", "path", "size", "content_type"),
    ANONYMOUS_BODIES,
    ids=["json-60MiB", "batch-200MiB", "photo-50MiB", "items-5MiB"],
)
async def test_no_credential_is_refused_before_a_byte_of_the_body(
    app: FastAPI, method: str, path: str, size: int, content_type: str, declare_length: bool
) -> None:
    exchange = await send_body(
        app, method, path, size=size, content_type=content_type, declare_length=declare_length
    )
    assert_refused(exchange, 401)
    assert exchange.headers[b"www-authenticate"] == b"Bearer"


FORGED = {
    "wrong-signature": {"Authorization": "Bearer e30.e30.c2lnbmF0dXJl"},
    "api-key-of-another-shape": {"X-API-Key": "not-a-key"},
    # Well-shaped: only the database can tell that no such key exists.
    "unknown-api-key": {"X-API-Key": f"tsk_abcd1234_{uuid.uuid4().hex}"},
}


@pytest.mark.parametrize("headers", FORGED.values(), ids=FORGED.keys())
async def test_a_forged_credential_uploads_nothing(app: FastAPI, headers: dict[str, str]) -> None:
    exchange = await send_body(
        app,
        "POST",
        f"{API}/batches",
        size=200 * MiB,
        content_type=MULTIPART,
        headers=headers,
        declare_length=False,
    )
    assert_refused(exchange, 401)


async def test_an_ended_session_uploads_nothing(
    app: FastAPI, client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    """A logged-out session's token still has a valid signature: the upload route asks the
    database before it reads."""
    token = await login(client, tenant_a.admin_email)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.post(f"{API}/auth/logout", headers=headers)).status_code == 204
    exchange = await send_body(
        app,
        "POST",
        f"{API}/batches",
        size=50 * MiB,
        content_type=MULTIPART,
        headers=headers,
        declare_length=False,
    )
    assert_refused(exchange, 401)


async def test_a_client_over_its_rate_limit_is_refused_before_its_body(
    settings: Settings, database: Database
) -> None:
    """Public routes with a body (sign-in here) count the address before reading it."""
    app = create_app(
        settings.model_copy(update={"rate_limit_per_ip": "2/minute"}), database=database
    )
    form = "application/x-www-form-urlencoded"
    for _ in range(2):
        await send_body(app, "POST", f"{API}/auth/token", size=512 * 1024, content_type=form)
    refused = await send_body(app, "POST", f"{API}/auth/token", size=512 * 1024, content_type=form)
    assert_refused(refused, 429)


@pytest.mark.parametrize(
    "path", [TRANSACTION, PASSWORD_ROUTE, ITEMS], ids=["transaction", "password", "items"]
)
async def test_signed_in_json_over_the_small_limit_is_413(
    app: FastAPI, settings: Settings, tenant_a: Tenant, path: str
) -> None:
    method = "PATCH" if path == TRANSACTION else "POST"
    declared = await send_body(
        app, method, path, size=5 * MiB, content_type=JSON, headers=tenant_a.headers
    )
    assert_refused(declared, 413)  # the Content-Length alone refuses it
    streamed = await send_body(
        app,
        method,
        path,
        size=5 * MiB,
        content_type=JSON,
        headers=tenant_a.headers,
        declare_length=False,
    )
    assert_refused(streamed, 413, pulled_at_most=settings.max_body_bytes + CHUNK)


async def test_an_upload_route_takes_json_no_larger_than_any_other(
    app: FastAPI, settings: Settings, tenant_a: Tenant
) -> None:
    """The upload limit is for the route's multipart bodies: JSON (or anything else) sent
    there is capped at the small default by its Content-Length, and without one it is
    never read (the route reads only a form)."""
    for declare_length, status in ((True, 413), (False, 422)):
        exchange = await send_body(
            app,
            "POST",
            f"{API}/batches",
            size=settings.max_body_bytes + 1,
            content_type=JSON,
            headers=tenant_a.headers,
            declare_length=declare_length,
        )
        assert_refused(exchange, status)


async def test_an_upload_is_cut_off_at_its_limit_while_it_streams(
    settings: Settings, database: Database, tenant_a: Tenant
) -> None:
    small = settings.model_copy(
        update={"statements_max_files": 1, "statements_max_file_bytes": MiB}
    )
    app = create_app(small, database=database)
    limit = small.statements_max_file_bytes + small.max_body_bytes
    streamed = await send_body(
        app,
        "POST",
        f"{API}/batches",
        size=20 * MiB,
        content_type=MULTIPART,
        headers=tenant_a.headers,
        declare_length=False,
    )
    assert_refused(streamed, 413, pulled_at_most=limit + CHUNK)
    assert streamed.pulled > small.max_body_bytes  # the route's own limit, not the default
    declared = await send_body(
        app,
        "POST",
        f"{API}/batches",
        size=limit + 1,
        content_type=MULTIPART,
        headers=tenant_a.headers,
    )
    assert_refused(declared, 413)


def many_parts(count: int, field: str, filename: str | None) -> bytes:
    """A multipart body (MULTIPART's boundary) of `count` small parts named `field`."""
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
    part = f"--touchstone-test-boundary\r\nContent-Disposition: {disposition}\r\n\r\n"
    return (part.encode() + b"%PDF-1.7\n" + b"x" * 1024 + b"\r\n") * count + (
        b"--touchstone-test-boundary--\r\n"
    )


@pytest.mark.parametrize(("field", "filename"), [("files", "a.pdf"), ("label", None)])
async def test_a_form_stops_being_read_where_it_has_too_many_parts(
    app: FastAPI, tenant_a: Tenant, field: str, filename: str | None
) -> None:
    """Each file part keeps up to 1 MiB in memory, each text part all of itself: within a
    500 MB upload, a thousand small parts are refused where their count crosses the limit,
    not read to the end."""
    body = many_parts(1000, field, filename)
    exchange = await send_body(
        app,
        "POST",
        f"{API}/batches",
        size=len(body),
        content=body,
        content_type=MULTIPART,
        headers=tenant_a.headers,
    )
    assert_refused(exchange, 400, pulled_at_most=len(body) // 10)


async def test_uploads_within_their_limit_still_work(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    files = [("files", ("march.pdf", statement_pdf(), "application/pdf"))]
    response = await client.post(f"{API}/batches", headers=tenant_a.headers, files=files)
    assert response.status_code == 202, response.text


def body_rules(app: FastAPI) -> dict[tuple[str, str], tuple[BodyRule, Any]]:
    rules: dict[int, BodyRule] = app.state.body_rules
    return {
        (method, str(route.path_format)): (rules[id(route.original_route)], route)
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute)
        for method in route.methods
    }


def test_every_route_has_a_limit_and_only_uploads_exceed_the_default(settings: Settings) -> None:
    routes = body_rules(create_app(settings))
    assert len(routes) > 80  # the walk sees every route
    assert all(rule.max_bytes <= settings.max_body_bytes for rule, _ in routes.values())
    larger = {key for key, (rule, _) in routes.items() if rule.upload_bytes is not None}
    assert larger == set(UPLOADS), "a larger body limit needs a reason in UPLOADS"
    for key in UPLOADS:
        rule, route = routes[key]
        assert route.body_field is not None
        assert isinstance(route.body_field.field_info, params.Form), f"{key}: not multipart"
        assert rule.confirm_credential, f"{key}: an upload checks the credential first"


def test_every_authenticated_route_with_a_body_checks_the_credential_first(
    settings: Settings,
) -> None:
    routes = body_rules(create_app(settings))
    with_body = {key: rule for key, (rule, route) in routes.items() if route.body_field}
    authenticated = {key for key, (rule, route) in routes.items() if authenticates(route.dependant)}
    assert {key for key, rule in with_body.items() if rule.authenticate_first} == (
        set(with_body) & authenticated
    )
    assert ("POST", "/api/v1/auth/token") in set(with_body) - authenticated  # public: no check
    assert len(set(with_body) & authenticated) > 25
    public = set(with_body) - authenticated
    assert all(routes[key][0].count_address_first for key in public), "rate-limited unread"


async def test_every_body_route_refuses_a_declared_body_over_the_default(
    app: FastAPI, settings: Settings, tenant_a: Tenant
) -> None:
    """Behaviour, not just the rules: one byte over `max_body_bytes`, declared, on every route
    that takes a body (uploads too, for a JSON body), public or not."""
    wrong = []
    for (method, path), (_, route) in body_rules(app).items():
        if route.body_field is None:
            continue
        url = PARAM.sub(str(NOBODY), path)
        exchange = await send_body(
            app,
            method,
            url,
            size=settings.max_body_bytes + 1,
            content_type=JSON,
            headers=tenant_a.headers,
        )
        if exchange.status != 413 or exchange.pulled:
            wrong.append((method, path, exchange.status, exchange.pulled))
    assert wrong == []
