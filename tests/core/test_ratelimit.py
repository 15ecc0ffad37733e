"""Rate limits: per principal and per address, IETF headers, 429 with Retry-After, Redis."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from limits import parse

from tests.conftest import Tenant, assert_problem, login
from touchstone.core import ratelimit
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.main import create_app


async def _client(
    settings: Settings, database: Database, **limits: object
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=limits), database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_principal_budget_headers_and_429(
    settings: Settings, database: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    async for client in _client(settings, database, rate_limit_default="3/minute"):
        seen = []
        for _ in range(3):
            response = await client.get("/api/v1/me", headers=tenant_a.headers)
            assert response.status_code == 200
            seen.append(response.headers["ratelimit"])
        assert response.headers["ratelimit-policy"] == '"default";q=3;w=60'
        assert [s.split(";")[1] for s in seen] == ["r=2", "r=1", "r=0"]
        blocked = await client.get("/api/v1/me", headers=tenant_a.headers)
        body = assert_problem(blocked, 429, "rate_limited")
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        assert blocked.headers["ratelimit-policy"] == '"default";q=3;w=60'
        assert "request_id" in body
        # Another principal has its own budget.
        assert (await client.get("/api/v1/me", headers=tenant_b.headers)).status_code == 200


async def test_address_budget_covers_public_and_private_routes(
    settings: Settings, database: Database, tenant_a: Tenant
) -> None:
    async for client in _client(settings, database, rate_limit_per_ip="2/minute"):
        assert (await client.get("/api/v1/me", headers=tenant_a.headers)).status_code == 200
        refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 20})
        assert refresh.status_code == 401
        blocked = await client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 20})
        assert_problem(blocked, 429, "rate_limited")


async def test_unreachable_redis_fails_open_by_default_and_closed_if_configured(
    settings: Settings, database: Database, tenant_a: Tenant
) -> None:
    """Sign-ins too: the login lockout counts in the same store (a 500 in `make chaos`)."""
    dead = "redis://127.0.0.1:1/0"
    wrong = {"username": tenant_a.admin_email, "password": "not-the-password"}
    async for client in _client(settings, database, redis_url=dead, rate_limit_default="1/minute"):
        for _ in range(3):
            response = await client.get("/api/v1/me", headers=tenant_a.headers)
            assert response.status_code == 200
            assert "ratelimit" not in response.headers
        assert await login(client, tenant_a.admin_email)
        assert_problem(await client.post("/api/v1/auth/token", data=wrong), 401)
    async for client in _client(settings, database, redis_url=dead, rate_limit_fail_open=False):
        closed = await client.get("/api/v1/me", headers=tenant_a.headers)
        assert_problem(closed, 503, "service_unavailable")
        assert_problem(await client.post("/api/v1/auth/token", data=wrong), 503)


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="REDIS_URL is not set: no Redis to test shared rate-limit counters against",
)
async def test_processes_share_counters_through_redis(
    settings: Settings, database: Database, tenant_a: Tenant, client: httpx.AsyncClient
) -> None:
    token = await login(client, tenant_a.admin_email)
    headers = {"Authorization": f"Bearer {token}"}
    shared = {"redis_url": os.environ["REDIS_URL"], "rate_limit_default": "3/minute"}
    async for first in _client(settings, database, **shared):
        async for second in _client(settings, database, **shared):
            statuses = [
                (await api.get("/api/v1/me", headers=headers)).status_code
                for api in (first, second, first, second)
            ]
    assert statuses == [200, 200, 200, 429]


async def test_memory_counters_expire_and_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process store counts, expires and clears as `limits`' stores do, and drops
    counters nobody uses again (one per address seen would otherwise grow without bound)."""
    now = 1_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    counters = ratelimit.MemoryCounters()
    assert [await counters.incr("a", 10) for _ in range(3)] == [1, 2, 3]
    assert (await counters.get("a"), await counters.get_expiry("a")) == (3, 1_010.0)
    assert (await counters.get("absent"), await counters.get_expiry("absent")) == (0, now)
    await counters.incr("b", 50)
    now = 1_010.0  # "a" has expired: a new window starts with this hit
    assert await counters.get("a") == 0
    assert await counters.incr("a", 10) == 1
    assert await counters.get_expiry("a") == 1_020.0
    await counters.clear("a")
    assert await counters.get("a") == 0
    await counters.incr("c", 5)
    now = 1_000.0 + ratelimit.SWEEP_INTERVAL + 1  # "b" and "c" expired; the next hit sweeps
    await counters.incr("d", 5)
    assert set(counters._counters) == {"d"}


@pytest.mark.parametrize(
    ("text", "policy", "keys"),
    [
        ("600/minute", "default", ("user:1",)),
        ("5/15 minutes", "login", ("10.0.0.1", "a@b.example")),
    ],
)
def test_counter_keys_are_laid_out_as_limits_lays_them_out(
    text: str, policy: str, keys: tuple[str, ...]
) -> None:
    """Counters a process kept in Redis before a deploy go on counting after it."""
    assert ratelimit.rule(text, policy).key(keys) == parse(text).key_for(policy, *keys)
