from __future__ import annotations

import httpx
import pytest

from tests.conftest import Tenant


async def test_live_ready_and_details(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["components"] == {"database": True, "workers": True, "storage": True}
    details = (await client.get("/health")).json()
    database = details["components"]["database"]
    assert database["ok"]
    assert database["migrations_at_head"]
    assert database["duration_ms"] >= 0
    assert "postgresql" not in str(details).lower()  # no URLs or secrets


async def test_ready_fails_when_migrations_are_behind(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    app.state.migration_head = "not-the-head"
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"


async def test_ready_fails_without_a_live_worker_when_workers_are_required(
    client: httpx.AsyncClient,
) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    app.state.settings = app.state.settings.model_copy(update={"health_requires_worker": True})
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["components"]["workers"] is False
    details = (await client.get("/health")).json()
    assert details["components"]["workers"]["workers_alive"] == 0


async def test_metrics_report_requests_by_route_template(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    await client.get("/api/v1/users", headers=tenant_a.headers)
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/users"' in metrics
    assert "touchstone_http_request_duration_seconds_bucket" in metrics
    assert "touchstone_db_pool_connections" in metrics


async def test_ready_fails_when_the_storage_volume_cannot_take_an_upload(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk makes uploads fail with 507; readiness says so (the chaos run fills one)."""
    app = client._transport.app  # type: ignore[attr-defined]
    monkeypatch.setattr(app.state.storage, "default_max_bytes", 2**62)  # more than any disk
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["components"]["storage"] is False
