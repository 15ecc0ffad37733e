"""Liveness, readiness and a per-component report. Public, and free of secrets."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from touchstone.core.db import Database
from touchstone.core.jobs.monitoring import refresh_job_metrics
from touchstone.core.metrics import DB_POOL, REGISTRY
from touchstone.core.routing import ApiRouter

router = ApiRouter(tags=["health"])
HealthCheck = Callable[[Request], Awaitable[dict[str, Any]]]


async def database_check(request: Request) -> dict[str, Any]:
    database: Database = request.app.state.database
    expected: str | None = request.app.state.migration_head
    async with database.engine.connect() as connection:
        version = (
            await connection.execute(text("select version_num from alembic_version"))
        ).scalar_one_or_none()
    at_head = version == expected
    return {"ok": at_head, "migrations_at_head": at_head}


def _checks(request: Request) -> dict[str, HealthCheck]:
    checks: dict[str, HealthCheck] = request.app.state.health_checks
    return checks


async def _run(request: Request) -> tuple[bool, dict[str, Any]]:
    components: dict[str, Any] = {}
    for name, check in _checks(request).items():
        started = time.perf_counter()
        try:
            result = await check(request)
        except Exception as exc:  # a failing dependency is a report, not a crash
            result = {"ok": False, "error": type(exc).__name__}
        result["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        components[name] = result
    return all(c["ok"] for c in components.values()), components


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    ok, components = await _run(request)
    return JSONResponse(
        {
            "status": "ok" if ok else "unavailable",
            "components": {name: c["ok"] for name, c in components.items()},
        },
        status_code=200 if ok else 503,
    )


@router.get("/health")
async def details(request: Request) -> JSONResponse:
    ok, components = await _run(request)
    return JSONResponse(
        {
            "status": "ok" if ok else "degraded",
            "version": request.app.version,
            "components": components,
        },
        status_code=200 if ok else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format; database figures are read at scrape time."""
    database: Database = request.app.state.database
    await refresh_job_metrics(database)
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    DB_POOL.labels("checked_out").set(pool.checkedout())
    DB_POOL.labels("idle").set(pool.checkedin())
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
