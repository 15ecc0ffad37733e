"""Live event streams end when their authorization does (issue 13, section 4).

A stream used to be authorized once, when it opened, and then delivered for as long as it
stayed open: after a logout, a deactivated member, a role change, a revoked API key and the
access token's expiry. Each is tried here on a real server whose streams re-check every
0.2 s; the waits are bounded generously and never measure time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import PASSWORD, Tenant, add_member, committed_tenant, login
from tests.core.events.conftest import LiveServer, serve
from tests.core.events.test_events import emit, subscribed
from tests.security.world import make_platform_admin
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.permissions import Role
from touchstone.main import create_app

API = "/api/v1"
ENDED = 30.0
"""Generous: how long a test waits for a stream to end before calling it still open."""


@pytest.fixture
async def server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    quick = settings.model_copy(update={"stream_recheck_seconds": 0.2})
    async with serve(quick, committed) as running:
        yield running


async def read_sse(response: httpx.Response, seen: list[dict[str, Any]]) -> None:
    """Append each block (`event` and its JSON `data`) until the response ends."""
    block: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in block:
                seen.append({"event": block["event"], **json.loads(block["data"])})
            block = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            block[field] = value


async def first(seen: list[dict[str, Any]], event: str) -> dict[str, Any]:
    for _ in range(3000):  # 60 s at most
        if found := [e for e in seen if e["event"] == event]:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {event} event")


async def sse_ends_after(
    server: LiveServer,
    committed: Database,
    tenant: Tenant,
    headers: dict[str, str],
    end_it: Callable[[], Awaitable[None]],
    topics: str = "batch.*,appraisal.*",
) -> list[dict[str, Any]]:
    """Open an SSE stream with `headers`, prove it delivers, run `end_it`; every block the
    stream sent before it ended (asserting that it did end)."""
    seen: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=ENDED) as client,
        client.stream("GET", f"{API}/events", headers=headers, params={"topics": topics}) as sse,
    ):
        assert sse.status_code == 200
        reader = asyncio.create_task(read_sse(sse, seen))
        await subscribed(server, 1)
        await emit(committed, tenant, "batch.progress", percent=1)
        await first(seen, "batch.progress")
        await end_it()
        await asyncio.wait_for(reader, ENDED)  # still open: the defect
    return seen


async def test_sse_ends_at_logout(
    server: LiveServer, committed: Database, tenant: Tenant, live_client: httpx.AsyncClient
) -> None:
    _, member = await add_member(live_client, tenant, Role.VIEWER)

    async def logout() -> None:
        assert (await live_client.post(f"{API}/auth/logout", headers=member)).status_code == 204

    seen = await sse_ends_after(server, committed, tenant, member, logout)
    assert seen[-1]["event"] == "stream_ended"
    assert seen[-1]["status"] == 401


async def test_sse_ends_when_the_member_is_deactivated(
    server: LiveServer, committed: Database, tenant: Tenant, live_client: httpx.AsyncClient
) -> None:
    user_id, member = await add_member(live_client, tenant, Role.VIEWER)

    async def deactivate() -> None:
        response = await live_client.patch(
            f"{API}/users/{user_id}", headers=tenant.headers, json={"is_active": False}
        )
        assert response.status_code == 200, response.text

    seen = await sse_ends_after(server, committed, tenant, member, deactivate)
    assert seen[-1]["event"] == "stream_ended"
    assert seen[-1]["status"] == 401


async def test_sse_ends_when_a_role_change_removes_the_permission_it_serves(
    server: LiveServer, committed: Database, tenant: Tenant, live_client: httpx.AsyncClient
) -> None:
    user_id, member = await add_member(live_client, tenant, Role.VIEWER)

    async def demote() -> None:  # a teacher may not read appraisals
        response = await live_client.patch(
            f"{API}/users/{user_id}", headers=tenant.headers, json={"role": Role.TEACHER}
        )
        assert response.status_code == 200, response.text

    seen = await sse_ends_after(server, committed, tenant, member, demote)
    assert seen[-1]["event"] == "stream_ended"
    # A role change also ends the member's sessions today (401); without that, the lost
    # permission would end the stream (403).
    assert seen[-1]["status"] in (401, 403)


async def test_sse_ends_when_the_org_is_deactivated(
    server: LiveServer,
    committed: Database,
    settings: Settings,
    tenant: Tenant,
    live_client: httpx.AsyncClient,
) -> None:
    operator = await committed_tenant(committed, settings, live_client)
    async with committed.transaction() as session:
        await make_platform_admin(await session.connection(), operator)

    async def deactivate_org() -> None:
        response = await live_client.patch(
            f"{API}/platform/orgs/{tenant.org_id}",
            headers=operator.headers,
            json={"is_active": False},
        )
        assert response.status_code == 200, response.text

    seen = await sse_ends_after(server, committed, tenant, tenant.headers, deactivate_org)
    assert seen[-1]["event"] == "stream_ended"
    assert seen[-1]["status"] == 401


async def _branch(client: httpx.AsyncClient, tenant: Tenant, code: str) -> str:
    response = await client.post(
        f"{API}/branches", headers=tenant.headers, json={"name": code, "code": code}
    )
    assert response.status_code == 201, response.text
    branch_id: str = response.json()["id"]
    return branch_id


async def test_sse_ends_when_the_member_moves_to_another_branch(
    server: LiveServer, committed: Database, tenant: Tenant, live_client: httpx.AsyncClient
) -> None:
    """The stream filters by the branch it opened with; a move keeps the session, so the
    re-computed principal is what ends the stream."""
    north = await _branch(live_client, tenant, "N1")
    south = await _branch(live_client, tenant, "S1")
    user_id, member = await add_member(live_client, tenant, Role.APPRAISER, north)

    async def move() -> None:
        response = await live_client.patch(
            f"{API}/users/{user_id}", headers=tenant.headers, json={"branch_id": south}
        )
        assert response.status_code == 200, response.text

    seen = await sse_ends_after(server, committed, tenant, member, move)
    assert seen[-1]["event"] == "stream_ended"
    assert seen[-1]["status"] == 403


async def test_sse_of_an_api_key_ends_when_the_key_is_revoked(
    server: LiveServer, committed: Database, tenant: Tenant, live_client: httpx.AsyncClient
) -> None:
    created = await live_client.post(
        f"{API}/api-keys",
        headers=tenant.headers,
        json={"name": "stream", "scopes": ["statements:read"]},
    )
    assert created.status_code == 201, created.text
    key = created.json()

    async def revoke() -> None:
        response = await live_client.delete(f"{API}/api-keys/{key['id']}", headers=tenant.headers)
        assert response.status_code == 200, response.text

    seen = await sse_ends_after(
        server, committed, tenant, {"X-API-Key": key["key"]}, revoke, topics="batch.*"
    )
    assert seen[-1]["event"] == "stream_ended"
    assert seen[-1]["code"] == "api_key_invalid"


async def test_sse_ends_when_the_access_token_expires(
    settings: Settings, committed: Database, tenant: Tenant
) -> None:
    """No periodic re-check here (an hour apart): the token's `exp` alone ends the stream."""
    rarely = settings.model_copy(update={"stream_recheck_seconds": 3600})
    short = settings.model_copy(update={"access_token_ttl_seconds": 5})
    signer = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(short, database=committed)),
        base_url="http://test",
    )
    seen: list[dict[str, Any]] = []
    async with serve(rarely, committed) as server, signer:
        token = await login(signer, tenant.admin_email, PASSWORD)
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=ENDED) as client,
            client.stream(
                "GET", f"{API}/events", headers={"Authorization": f"Bearer {token}"}
            ) as sse,
        ):
            assert sse.status_code == 200
            await asyncio.wait_for(read_sse(sse, seen), ENDED)
    assert seen[-1] == {
        "event": "stream_ended",
        "code": "unauthorized",
        "status": 401,
        "detail": "The access token has expired",
    }


async def _websocket_close(
    server: LiveServer,
    committed: Database,
    tenant: Tenant,
    token: str,
    end_it: Callable[[], Awaitable[None]],
) -> tuple[int, str]:
    url = f"{server.ws_url}{API}/ws?topics=batch.*,appraisal.*&access_token={token}"
    async with connect(url) as socket:
        await subscribed(server, 1)
        await emit(committed, tenant, "batch.progress", percent=1)
        assert json.loads(await asyncio.wait_for(socket.recv(), ENDED))["topic"] == "batch.progress"
        await end_it()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), ENDED)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_websocket_closes_4401_at_logout_and_1008_when_the_branch_changes(
    server: LiveServer, committed: Database, tenant: Tenant, live_client: httpx.AsyncClient
) -> None:
    _, member = await add_member(live_client, tenant, Role.VIEWER)
    token = member["Authorization"].removeprefix("Bearer ")

    async def logout() -> None:
        assert (await live_client.post(f"{API}/auth/logout", headers=member)).status_code == 204

    assert await _websocket_close(server, committed, tenant, token, logout) == (
        4401,
        "unauthorized",
    )

    north = await _branch(live_client, tenant, "N2")
    south = await _branch(live_client, tenant, "S2")
    user_id, member = await add_member(live_client, tenant, Role.APPRAISER, north)
    token = member["Authorization"].removeprefix("Bearer ")

    async def move() -> None:
        response = await live_client.patch(
            f"{API}/users/{user_id}", headers=tenant.headers, json={"branch_id": south}
        )
        assert response.status_code == 200, response.text

    assert await _websocket_close(server, committed, tenant, token, move) == (1008, "forbidden")
