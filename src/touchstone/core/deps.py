"""Dependencies every router uses: the unit of work, the principal, permission checks.

`SessionDep` is the request's single transaction, already in the caller's tenant. It runs
with `scope="function"` so the commit happens *before* the response is sent: a failed
commit must reach the client as an error, never as a 200.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.auth import API_KEY_PREFIX, Authenticator, Credential, Principal, TenantEntry
from touchstone.core.config import Settings
from touchstone.core.db import Database, enter
from touchstone.core.errors import AppError, Unauthorized

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def read_credential(
    bearer: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Credential:
    if api_key:
        return Credential("api_key", api_key)
    if bearer:
        if bearer.startswith(API_KEY_PREFIX):
            return Credential("api_key", bearer)
        return Credential("access_token", bearer)
    raise Unauthorized("Send a bearer token or an X-API-Key header")


CredentialDep = Annotated[Credential, Depends(read_credential)]


async def tenant_entry(request: Request, credential: CredentialDep) -> TenantEntry:
    """The statement that authenticates this request; cached for the request by FastAPI, so
    the rate limiter and the session (or `core.reads`) share it."""
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.entry(credential)


EntryDep = Annotated[TenantEntry, Depends(tenant_entry)]


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
    session = get_database(request).session()
    try:
        principal = await enter(session, entry)
    except BaseException:
        await session.close()
        raise
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(
        org_id=str(principal.org_id), principal=f"{principal.kind}:{principal.id}"
    )
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
