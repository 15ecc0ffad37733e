"""Every route is authenticated by default and names its permission (OWASP API2, API5).

The lists below are the whole exception surface. A new route that is public, or that asks
only "who are you?" and not "may you?", fails here until someone adds it with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import compile_path

from touchstone.core.config import Settings
from touchstone.core.deps import authenticates, dependency_calls
from touchstone.main import create_app

PUBLIC = {
    "/openapi.json": "the API description (off when docs are hidden)",
    "/docs": "Swagger UI (off when docs are hidden)",
    "/docs/oauth2-redirect": "Swagger UI's OAuth redirect page",
    "/redoc": "ReDoc (off when docs are hidden)",
    "/docs/assets/{name}": "Swagger UI's and ReDoc's files (off when docs are hidden)",
    "/health/live": "probe",
    "/health/ready": "probe",
    "/health": "probe",
    "/metrics": "Prometheus scrape",
    "/api/v1/auth/token": "sign-in",
    "/api/v1/auth/refresh": "the refresh token is the credential",
    "/api/v1/auth/invitations/accept": "the invitation token is the credential",
    "/api/v1/auth/password-reset": "asks for a reset email; the same answer for any address",
    "/api/v1/auth/password-reset/confirm": "the emailed reset token is the credential",
    "/app/account/invitation": "static page an invitation email links to",
    "/app/account/password-reset": "static page a password-reset email links to",
    "/app/account/account.js": "static script of those pages",
    "/app/account/account.css": "static style of those pages",
    "/api/v1/billing/webhooks/stripe": "Stripe's signature is the credential",
    "/verify/certificates/{number}": "public certificate check by number and digest",
    "/app/appraisal/live": "static page; it calls the API with the user's token",
    "/app/appraisal/live.js": "static script of that page",
    "/app/appraisal/live.css": "static style of that page",
    "/api/v1/files/{key}": "a signed URL, or a credential allowed by the kind's module: checks",
    "/api/v1/ws": "WebSocket: authenticates itself by header or access_token",
    "/api/v1/purity-sessions/{test_id}/ws": "WebSocket: authenticates itself by access_token",
    "/api/v1/attendance/sessions/{session_id}/camera": (
        "WebSocket: authenticates itself by header or access_token"
    ),
}

AUTHENTICATION_ONLY = {
    ("POST", "/api/v1/auth/logout"): "any principal may end its own session",
    ("GET", "/api/v1/me"): "the caller's own profile",
    ("POST", "/api/v1/me/password"): "the caller's own password",
    ("GET", "/api/v1/jobs/{job_id}"): "the job kind's read permission, checked in the handler",
    ("POST", "/api/v1/jobs/{job_id}/cancel"): "read permission, and creator or org:write",
    ("GET", "/api/v1/events"): "the caller's org's event stream",
}


@dataclass(frozen=True)
class RouteFacts:
    methods: tuple[str, ...]
    path: str
    authenticated: bool
    permissions: frozenset[str]


def inventory(settings: Settings) -> list[RouteFacts]:
    """Every HTTP and WebSocket route with what its dependency tree demands."""
    facts = []
    for route in iter_route_contexts(create_app(settings).routes):
        original = route.original_route
        dependant = route.dependant if isinstance(original, APIRoute | APIWebSocketRoute) else None
        calls = list(dependency_calls(dependant)) if dependant is not None else []
        facts.append(
            RouteFacts(
                methods=tuple(sorted(route.methods or ("WEBSOCKET",))),
                path=str(route.path_format),
                authenticated=dependant is not None and authenticates(dependant),
                permissions=frozenset(
                    p for call in calls if (p := getattr(call, "permission", None)) is not None
                ),
            )
        )
    return facts


def test_the_walk_sees_every_module(settings: Settings) -> None:
    """Guards the walk itself: if FastAPI changed how included routers are stored, an empty
    inventory would pass every rule below."""
    routes = inventory(settings)
    paths = {route.path for route in routes}
    for expected in ("/api/v1/users", "/api/v1/batches", "/api/v1/appraisals", "/api/v1/ws"):
        assert expected in paths
    assert sum(route.authenticated for route in routes) > 50
    assert {"users:write", "statements:read", "appraisals:approve"} <= frozenset().union(
        *(route.permissions for route in routes)
    )


def test_every_route_is_authenticated_unless_listed_public(settings: Settings) -> None:
    unexpected = [
        f"{'/'.join(r.methods)} {r.path}"
        for r in inventory(settings)
        if not r.authenticated and r.path not in PUBLIC
    ]
    assert unexpected == [], f"public routes not on the allow-list (add a reason): {unexpected}"


def test_public_routes_really_are_public(settings: Settings) -> None:
    """A listed route that gained a credential check belongs off the list."""
    stale = [r.path for r in inventory(settings) if r.path in PUBLIC and r.authenticated]
    assert stale == []
    assert set(PUBLIC) <= {r.path for r in inventory(settings)}, "remove routes that are gone"


def test_every_authenticated_route_names_a_permission(settings: Settings) -> None:
    routes = [r for r in inventory(settings) if r.authenticated]
    missing = [
        f"{method} {r.path}"
        for r in routes
        for method in r.methods
        if not r.permissions and (method, r.path) not in AUTHENTICATION_ONLY
    ]
    assert missing == [], f"authenticated routes without require()/tenant_read(): {missing}"
    known = {(m, r.path) for r in routes for m in r.methods}
    assert set(AUTHENTICATION_ONLY) <= known, "remove routes that are gone"


def test_no_request_could_match_two_routes(settings: Settings) -> None:
    """Routers are included with the busiest first (see `create_app`), which is safe only while
    no path (with any value in its parameters) fits two routes of one method: a public route
    shadowed by an authenticated one, or the reverse, would change who may call it."""
    routes = inventory(settings)
    patterns = [(route, compile_path(route.path)[0]) for route in routes]
    clashes = [
        (a.path, b.path)
        for a in routes
        for b, pattern in patterns
        if a is not b
        and set(a.methods) & set(b.methods)
        and pattern.match(re.sub(r"\{[^}]+\}", "x", a.path))
    ]
    assert clashes == []
