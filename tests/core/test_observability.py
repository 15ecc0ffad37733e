"""Logs carry request, tenant and principal; traces reach an OTLP collector."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from tests.conftest import Tenant
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.main import create_app


async def test_access_log_line_is_json_with_request_tenant_and_principal(
    settings: Settings, database: Database, tenant_a: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(
        settings.model_copy(update={"log_format": "json", "log_level": "INFO"}), database=database
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        capsys.readouterr()
        response = await client.get(
            "/api/v1/users/00000000-0000-0000-0000-000000000001",
            headers={**tenant_a.headers, "X-Request-ID": "req-42"},
        )
    assert response.status_code == 404
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    access = [line for line in lines if line.get("event") == "request"]
    assert len(access) == 1
    assert (
        access[0]
        | {
            "request_id": "req-42",
            "org_id": str(tenant_a.org_id),
            "method": "GET",
            "route": "/api/v1/users/{user_id}",
            "status": 404,
        }
        == access[0]
    )
    assert access[0]["principal"].startswith("user:")
    assert access[0]["duration_ms"] >= 0


class _Collector(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Collector.received.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def otlp_collector() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_traces_are_exported_over_otlp(
    settings: Settings, database: Database, otlp_collector: str
) -> None:
    from opentelemetry import trace
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    app = create_app(
        settings.model_copy(update={"otel_exporter_otlp_endpoint": otlp_collector}),
        database=database,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/health/ready")).status_code == 200
            assert (await client.get("/api/v1/org")).status_code == 401
        provider = trace.get_tracer_provider()
        provider.force_flush()  # type: ignore[attr-defined]
    # Instrumentation is process-wide: stop it so later tests in this worker stay untraced.
    SQLAlchemyInstrumentor().uninstrument()
    provider.shutdown()  # type: ignore[attr-defined]
    assert "/v1/traces" in _Collector.received
