"""The application factory: middleware, routers, lifespan."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis

from touchstone.appraisal import router as appraisal
from touchstone.arcontent import router as arcontent
from touchstone.attendance import router as attendance
from touchstone.core.apidocs.router import router as apidocs_router
from touchstone.core.cache import get_cache
from touchstone.core.config import Settings, get_settings
from touchstone.core.db import Database
from touchstone.core.email.engine import warn_if_unconfigured
from touchstone.core.email.local_server import start_development_server
from touchstone.core.email.viewer import router as mail_viewer_router
from touchstone.core.errors import install_error_handlers, problem_responses
from touchstone.core.events.hub import EventHub
from touchstone.core.events.listener import listen_postgres, listen_redis
from touchstone.core.events.relay import OutboxRelay
from touchstone.core.events.router import router as events_router
from touchstone.core.events.router import websocket_router as events_websocket_router
from touchstone.core.files_router import files_router
from touchstone.core.health import database_check
from touchstone.core.health import router as health_router
from touchstone.core.idempotency import install_idempotency
from touchstone.core.jobs.monitoring import worker_check
from touchstone.core.jobs.router import router as jobs_router
from touchstone.core.logging import configure_logging
from touchstone.core.middleware import RequestContextMiddleware
from touchstone.core.migrations import migration_head
from touchstone.core.openapi import amend_openapi
from touchstone.core.postgres import admin_url, runtime_url
from touchstone.core.ratelimit import RateLimiter, limit_by_address
from touchstone.core.reads import PrincipalHints
from touchstone.core.routing import bind_routes, include_flat, require_authentication
from touchstone.core.security import configure_password_hashing
from touchstone.core.storage import get_storage, storage_check
from touchstone.core.telemetry import configure_tracing
from touchstone.event_consumers import EVENT_CONSUMERS
from touchstone.identity import pages as account_pages
from touchstone.identity import router as identity
from touchstone.identity.authentication import IdentityAuthenticator
from touchstone.research import router as research
from touchstone.statements import router as statements
from touchstone.webhooks.router import router as webhooks_router

API_PREFIX = "/api/v1"
# What any route can answer besides its own: a body over the limit, bad input (also control
# characters in the URL), a rate limit, the database away. Authenticated routes add the
# credential, permission, tenant-scoped lookup and state checks, uploads a full volume (507).
ANY_ROUTE = (413, 422, 429, 503)
PUBLIC_ERRORS = problem_responses(400, 401, 403, 404, 409, *ANY_ROUTE)
AUTHENTICATED_ERRORS = problem_responses(400, 401, 403, 404, 409, 415, *ANY_ROUTE, 507)


MAX_FORM_FIELDS = 32
"""Text fields of a form (sign-in has seven, a batch upload two)."""
MAX_FORM_FIELD_BYTES = 128 * 1024
"""One text field of a multipart form (a batch's `passwords`: 20,000 characters of UTF-8)."""

YOUNG_COLLECTION_THRESHOLD = 10_000


def _settle_heap() -> None:
    """Take what start-up built out of the garbage collector's sight, and collect young
    objects only after 10,000 net allocations rather than 700.

    The process keeps about 320,000 long-lived objects (modules, schemas, routes). Every full
    collection walked them all (0.2 s, twice in 10 s of the user list under load), and the
    allocation peaks of concurrent requests started a young collection every 16 requests.
    Frozen, the start-up heap is never walked again; at the higher threshold, young
    collections become rare, and cyclic garbage is still collected. Together 10% less CPU
    per request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app. Tests pass their own `database`; otherwise it connects at start-up."""
    settings = settings or get_settings()
    configure_logging(settings)
    configure_password_hashing(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = runtime_url(settings, admin_url(settings))
        owned = database is None
        app.state.database = database or Database(url, settings)
        configure_tracing(app, app.state.database.engine, settings)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        relay = OutboxRelay(app.state.database, url, EVENT_CONSUMERS, redis)
        listener = (
            listen_redis(app.state.event_hub, redis)
            if redis is not None
            else listen_postgres(app.state.event_hub, url)
        )
        background = [asyncio.create_task(relay.run_forever()), asyncio.create_task(listener)]
        warn_if_unconfigured(settings)
        mail_server = (
            start_development_server(settings.mail_dir, settings.dev_mail_port)
            if owned and settings.dev_mail_server
            else None
        )
        _settle_heap()
        try:
            yield
        finally:
            if mail_server is not None:
                mail_server.stop()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if redis is not None:
                await redis.aclose()
            await app.state.cache.aclose()
            if owned:
                await app.state.database.dispose()

    app = FastAPI(
        title="Touchstone",
        version=version("touchstone"),
        summary="Multi-tenant platform for appraisal, statements, attendance, AR and research",
        lifespan=lifespan,
        docs_url=None,  # ours, served offline: `touchstone.core.apidocs`
        redoc_url=None,
        openapi_url="/openapi.json" if settings.show_docs else None,
        debug=settings.debug,
        # Ours instead: OpenTelemetry's FastAPI and SQLAlchemy instrumentation when an
        # exporter is set (`configure_tracing`), Prometheus metrics, structlog. FastAPI's own
        # would look up the global OpenTelemetry providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # Multipart parsing keeps each text field, and up to 1 MiB of each file, in memory:
        # within a 500 MB upload, 1,000 of either (Starlette's defaults) would be 500 MB.
        form_limits={
            # one over what a batch takes, so the service names that error (too_many_files)
            "max_files": settings.statements_max_files + 1,
            "max_fields": MAX_FORM_FIELDS,
            "max_part_size": MAX_FORM_FIELD_BYTES,
        },
    )
    app.state.settings = settings
    app.state.authenticator = IdentityAuthenticator(settings)
    app.state.rate_limiter = RateLimiter(settings)
    app.state.principal_hints = PrincipalHints()
    app.state.event_hub = EventHub(settings.event_stream_queue_size)
    app.state.storage = get_storage(settings)
    app.state.cache = get_cache(settings)
    app.state.migration_head = migration_head()
    app.state.health_checks = {
        "database": database_check,
        "workers": worker_check,
        "storage": storage_check,
    }
    if database is not None:
        app.state.database = database

    install_error_handlers(app)
    install_idempotency(app, settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["*"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=["X-Request-ID", "Location", "Retry-After"],
        )
    # Body limits are per route (core.routing): no middleware could know the matched route.
    app.add_middleware(RequestContextMiddleware, hsts_seconds=settings.hsts_seconds)

    # One table of routes, tried in turn (`include_flat`): the authenticated API, which takes
    # nearly all the traffic, comes first. No request matches two routes (a test proves it),
    # so the order changes nothing else. Each of their routes authenticates through its own
    # dependency (checked here), rather than through one more on the router, which FastAPI
    # would resolve on every request.
    modules = (
        appraisal.router,
        statements.router,
        attendance.router,
        arcontent.router,
        research.router,
        webhooks_router,
    )
    for router in (identity.router, jobs_router, events_router, *modules):
        require_authentication(router)
        include_flat(app, router, prefix=API_PREFIX, responses=AUTHENTICATED_ERRORS)
    include_flat(app, health_router, responses=problem_responses(*ANY_ROUTE))
    # Public routes: each authenticates itself or needs no credential (listed, with the
    # reason, in tests/security/test_route_inventory.py).
    public = [Depends(limit_by_address)]
    for router, prefix in (
        (identity.public_router, API_PREFIX),
        (appraisal.public_router, ""),  # pages, certificate verification, purity WS
        (account_pages.router, ""),  # the pages emailed links open
        (statements.public_router, API_PREFIX),
        (attendance.public_router, API_PREFIX),  # the camera WebSocket authenticates itself
        # The WebSocket authenticates itself: browsers cannot send headers on it.
        (events_websocket_router, API_PREFIX),
    ):
        include_flat(app, router, prefix=prefix, dependencies=public, responses=PUBLIC_ERRORS)
    if settings.show_docs:
        include_flat(app, apidocs_router, dependencies=public)
    # Signed URLs or a credential; it checks itself.
    include_flat(app, files_router(), responses=PUBLIC_ERRORS)
    if settings.dev_mail_server:  # this machine only; it checks itself
        include_flat(app, mail_viewer_router)
    # FastAPI builds an included route's handler on its first request; this builds them all
    # now, so a route that cannot be served (an API route without body limits) stops start-up.
    bind_routes(app, settings)
    amend_openapi(app)
    return app
