"""Dependencies every router uses: the unit of work, the principal, permission checks.

`SessionDep` is the request's single transaction, already in the caller's tenant. It runs
with `scope="function"` so the commit happens *before* the response is sent: a failed
commit must reach the client as an error, never as a 200.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.auth import (
    API_KEY_PREFIX,
    Authenticator,
    Credential,
    Principal,
    TenantEntry,
    log_context,
)
from touchstone.core.config import Settings
from touchstone.core.db import Database, enter
from touchstone.core.errors import AppError, Unauthorized
from touchstone.core.ratelimit import RateLimiter, limit_by_address, remember_window

bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)
"""The two ways to present a credential, as OpenAPI security schemes (the Authorize button)."""


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def read_credential(
    bearer: Annotated[str | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Credential:
    if api_key:
        return Credential("api_key", api_key)
    if bearer:
        if bearer.startswith(API_KEY_PREFIX):
            return Credential("api_key", bearer)
        return Credential("access_token", bearer)
    raise Unauthorized("Send a bearer token or an X-API-Key header")


def tenant_entry(request: Request, credential: Credential) -> TenantEntry:
    """The statement that checks `credential` in the database and enters its tenant."""
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.entry(credential)


async def authenticate(request: Request) -> TenantEntry:
    """What every authenticated route runs first (through `SessionDep`, `EntryDep` or
    `core.reads.tenant_read`): a credential present, the JWT's signature and expiry or the
    API key's shape, the address and caller ("default") rate limits, and the entry
    statement that the database then checks. The caller's window goes on the response
    (`RequestContextMiddleware` writes it: `ratelimit.window_headers`).

    It takes the request alone, and reads the two credential headers itself: each
    sub-dependency costs FastAPI's resolution on every request (the OpenAPI document still
    names both schemes: `core.openapi`). Done once a request: a route that takes a body
    runs it before the body is read (`core.routing`), and later calls reuse it.
    """
    entry: TenantEntry | None = request.scope.get(_ENTRY)
    if entry is None:
        bearer, api_key = await bearer_scheme(request), await api_key_scheme(request)
        credential = await read_credential(bearer, api_key)
        await limit_by_address(request)
        entry = tenant_entry(request, credential)
        await _count(request, "default", entry.caller)
        request.scope[_ENTRY] = entry
    return entry


_ENTRY = "touchstone.entry"
"""Scope key: the caller's entry once `authenticate` ran for the request."""


EntryDep = Annotated[TenantEntry, Depends(authenticate)]


def authenticates(dependant: Dependant) -> bool:
    """Whether a route (or dependency) runs `authenticate`: through `EntryDep` (the session
    does) or inside a dependency marked as doing so (`core.reads.tenant_read`)."""
    return any(
        call is authenticate or getattr(call, "authenticates", False)
        for call in dependency_calls(dependant)
    )


def dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency callable in the tree, depth first (the route inventory uses it too)."""
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from dependency_calls(dependency)


async def _count(request: Request, group: str, caller: str) -> None:
    """Count the request against the caller's `group` budget; the window (none when the
    store was unreachable) goes on the response as `RateLimit` headers."""
    settings: Settings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    window = await limiter.hit(getattr(settings, f"rate_limit_{group}"), group, caller)
    remember_window(request.scope, window)


def rate_limit(group: str) -> Callable[..., Coroutine[Any, Any, None]]:
    """Dependency: count the request against the caller's budget for `group` too (every
    authenticated request already counts against "default"; uploads add "uploads")."""
    if f"rate_limit_{group}" not in Settings.model_fields:
        raise ValueError(f"no setting RATE_LIMIT_{group.upper()} for rate-limit group {group!r}")

    async def check(request: Request, entry: EntryDep) -> None:
        await _count(request, group, entry.caller)

    check.__name__ = f"rate_limit_{group}"
    return check


@asynccontextmanager
async def _unit_of_work(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit on success, roll back on error (or commit when the error says so).

    A context manager, not a generator the dependencies iterate: an exception FastAPI throws
    into the dependency must reach these `except` clauses, and `async for` would not forward it
    (the session was then left open, and `keep_changes` never committed).
    """
    try:
        yield session
        await session.commit()
    except AppError as error:
        await (session.commit() if error.keep_changes else session.rollback())
        raise
    except BaseException:
        await session.rollback()
        raise
    finally:
        await session.close()


async def tenant_session(request: Request, entry: EntryDep) -> AsyncIterator[AsyncSession]:
    session = get_database(request).session(tenant_from_entry=True)
    try:
        principal = await enter(session, entry)
    except BaseException:
        await session.close()
        raise
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(**log_context(principal))
    async with _unit_of_work(session) as item:
        yield item


async def system_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A transaction with no tenant: only for public routes such as login."""
    async with _unit_of_work(get_database(request).session()) as item:
        yield item


async def current_principal(
    request: Request, _session: Annotated[AsyncSession, Depends(tenant_session, scope="function")]
) -> Principal:
    principal: Principal = request.state.principal
    return principal


SessionDep = Annotated[AsyncSession, Depends(tenant_session, scope="function")]
SystemSessionDep = Annotated[AsyncSession, Depends(system_session, scope="function")]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency factory: the caller must hold `permission` in its current org."""

    async def check(principal: CurrentPrincipal) -> Principal:
        principal.ensure(permission)
        return principal

    check.__name__ = f"require_{permission.replace(':', '_')}"
    check.permission = permission  # type: ignore[attr-defined]  # read by the route inventory
    return check
