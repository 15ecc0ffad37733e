"""Every failure is RFC 9457 problem+json with a stable code and the request id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from starlette.websockets import WebSocketDisconnect

from tests.conftest import Tenant, assert_problem
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.errors import NotFound
from touchstone.core.storage.base import StorageFull
from touchstone.main import create_app

API = "/api/v1"


def _assert_full_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json"
    body = assert_problem(response, status)
    for field in ("type", "title", "status", "code", "request_id"):
        assert body.get(field), f"{field} missing from {body}"
    assert str(body["type"]).startswith("https://")
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    for path in ("/no/such/route", f"{API}/no-such-resource"):
        response = await client.get(path)
        body = _assert_full_problem(response, 404)
        assert body["code"] == "not_found"


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    response = await client.delete(f"{API}/users", headers=tenant_a.headers)
    body = _assert_full_problem(response, 405)
    assert body["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, POST"  # every route of the path, not the first


async def test_validation_errors_list_invalid_params(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    response = await client.post(
        f"{API}/users", headers=tenant_a.headers, json={"email": "not-an-email", "role": "wizard"}
    )
    body = _assert_full_problem(response, 422)
    assert body["code"] == "invalid_input"
    params = {p["name"]: p for p in body["invalid_params"]}
    assert set(params) == {"email", "full_name", "role"}
    for param in params.values():
        assert param["in"] == "body"
        assert isinstance(param["reason"], str)
        assert param["reason"]
    assert "not-an-email" not in response.text, "inputs are not echoed back"

    query = await client.get(f"{API}/users", headers=tenant_a.headers, params={"limit": "abc"})
    body = _assert_full_problem(query, 422)
    assert body["invalid_params"] == [
        {"name": "limit", "in": "query", "reason": body["invalid_params"][0]["reason"]}
    ]

    path = await client.get(f"{API}/users/not-a-uuid", headers=tenant_a.headers)
    body = _assert_full_problem(path, 422)
    assert [(p["name"], p["in"]) for p in body["invalid_params"]] == [("user_id", "path")]


async def test_malformed_json_is_a_422(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    response = await client.post(
        f"{API}/branches",
        headers=tenant_a.headers | {"Content-Type": "application/json"},
        content=b'{"name": "x", "code":',
    )
    _assert_full_problem(response, 422)


async def test_oversized_body_is_refused(
    client: httpx.AsyncClient, settings: Settings, tenant_a: Tenant
) -> None:
    payload = {"name": "x" * (settings.max_body_bytes + 10), "code": "BIG"}
    response = await client.post(f"{API}/branches", headers=tenant_a.headers, json=payload)
    body = _assert_full_problem(response, 413)
    assert body["code"] == "payload_too_large"
    listed = await client.get(f"{API}/branches", headers=tenant_a.headers)
    assert listed.json()["total"] == 0


async def test_oversized_streamed_body_is_refused(
    client: httpx.AsyncClient, settings: Settings, tenant_a: Tenant
) -> None:
    """Without Content-Length the limit is enforced while the body streams in."""
    document = json.dumps({"name": "x" * (settings.max_body_bytes + 10), "code": "BIG"}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(document), 64 * 1024):
            yield document[start : start + 64 * 1024]

    response = await client.post(
        f"{API}/branches",
        headers=tenant_a.headers | {"Content-Type": "application/json"},
        content=chunks(),
    )
    assert "content-length" not in response.request.headers
    body = _assert_full_problem(response, 413)
    assert body["code"] == "payload_too_large"
    listed = await client.get(f"{API}/branches", headers=tenant_a.headers)
    assert listed.json()["total"] == 0


@pytest.mark.parametrize("query", ["q=%00", "q=a%00b", "q=%1b%5b31m", "limit=1%0a"])
async def test_control_characters_in_the_query_are_refused(
    client: httpx.AsyncClient, query: str
) -> None:
    """Refused before anything else runs: no credentials needed to get the 422."""
    response = await client.get(f"{API}/users?{query}")
    body = _assert_full_problem(response, 422)
    assert body["code"] == "invalid_input"


async def test_control_characters_in_the_path_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/users/abc%00def")
    _assert_full_problem(response, 422)


async def test_unhandled_error_is_a_500_problem_without_internals(
    settings: Settings, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings, database=database)

    async def explode() -> None:
        raise RuntimeError("secret internal detail: dsn=postgresql://owner:hunter2@db")

    app.add_api_route("/boom", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as boom_client:
        response = await boom_client.get("/boom", headers={"X-Request-ID": "boom-request-1"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "boom-request-1"
    assert response.headers["x-request-id"] == "boom-request-1"
    for leak in ("Traceback", "RuntimeError", "hunter2", "secret internal detail", "explode"):
        assert leak not in response.text
    # The log line carrying the traceback names the same request, so support can find it.
    logged = [
        json.loads(line)
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("{") and "unhandled_error" in line
    ]
    assert logged
    assert logged[0]["request_id"] == "boom-request-1"


async def test_request_id_is_echoed_when_well_formed(client: httpx.AsyncClient) -> None:
    for supplied in ("abc-123", "req.2026:11_21", "0" * 128):
        response = await client.get("/no/such/route", headers={"X-Request-ID": supplied})
        assert response.headers["x-request-id"] == supplied
        assert response.json()["request_id"] == supplied


@pytest.mark.parametrize("supplied", ["x" * 300, "has spaces in it", "semi;colon", "<script>"])
async def test_malformed_request_id_is_replaced(client: httpx.AsyncClient, supplied: str) -> None:
    response = await client.get("/no/such/route", headers={"X-Request-ID": supplied})
    generated = response.headers["x-request-id"]
    assert generated != supplied
    assert len(generated) == 32
    int(generated, 16)
    assert response.json()["request_id"] == generated


async def test_request_id_header_is_sent_once(
    client: httpx.AsyncClient, settings: Settings, tenant_a: Tenant
) -> None:
    """Early refusals from middleware must not stack a second X-Request-ID header."""
    too_big = await client.post(
        f"{API}/branches",
        headers=tenant_a.headers | {"X-Request-ID": "once-only"},
        content=b"x" * (settings.max_body_bytes + 1),
    )
    assert too_big.status_code == 413
    ok = await client.get(f"{API}/me", headers=tenant_a.headers | {"X-Request-ID": "once-ok"})
    for response, supplied in ((too_big, "once-only"), (ok, "once-ok")):
        assert response.headers.get_list("x-request-id") == [supplied]


async def test_generated_request_ids_are_unique(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/no/such/route")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


async def test_missing_credentials_get_401_with_challenge(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = await client.get(f"{API}/users", headers=headers)
        body = _assert_full_problem(response, 401)
        assert body["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("raised", "close_code"),
    [
        (OperationalError("select 1", {}, Exception("server closed")), 1013),
        (NotFound("No such thing"), 1008),
        (StorageFull("The volume is full"), 1013),  # was 1008 until `make chaos` filled it
    ],
)
def test_websocket_errors_close_the_socket_with_a_code(
    settings: Settings, raised: Exception, close_code: int
) -> None:
    """An HTTP problem cannot travel on a socket: the socket closes with a code instead
    (1013 = try again later while a dependency is away or full), never an ASGI RuntimeError."""
    app = create_app(settings, database=None)

    @app.websocket("/ws-probe")
    async def probe(websocket: WebSocket) -> None:
        await websocket.accept()
        raise raised

    client = TestClient(app, raise_server_exceptions=False)
    with (
        client.websocket_connect("/ws-probe") as socket,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        socket.receive_text()
    assert closed.value.code == close_code
