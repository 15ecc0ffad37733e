"""Engine, sessions and the tenant context.

Every transaction starts by stating its tenant: an `after_begin` hook runs
`set_config('app.org_id', …, true)` from `session.info`, so a query can never run with a
stale or forgotten tenant. Transaction-local settings vanish at commit/rollback, so a pooled
connection carries nothing over to the next request.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic_core import from_json
from sqlalchemy import DateTime, MetaData, event, func, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column

from touchstone.core.auth import Principal, TenantEntry
from touchstone.core.config import Settings
from touchstone.core.errors import Conflict

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


class TenantMixin:
    """Marks a table as tenant-owned: the migration gives it row-level security."""

    org_id: Mapped[uuid.UUID] = mapped_column(index=True)


class TenantSession(Session):
    """Sync session class behind every AsyncSession; carries the tenant in `info`."""


@event.listens_for(TenantSession, "after_begin")
def _set_tenant(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    if transaction.nested:  # a SAVEPOINT inside a transaction whose tenant is already set
        return
    org_id = session.info.get("org_id")
    user_id = session.info.get("user_id")
    if org_id is None and session.info.get("tenant_from_entry"):
        # A request's first transaction: its first statement is the entry, which sets the
        # tenant (`enter`); clearing it first would cost a round trip on every write.
        return
    connection.exec_driver_sql(
        "select set_config('app.org_id', %(org)s, true), set_config('app.user_id', %(user)s, true)",
        {"org": str(org_id) if org_id else "", "user": str(user_id) if user_id else ""},
    )


UTC_SESSIONS = "-c TimeZone=UTC"
"""Every connection reads timestamps in UTC, whatever the server's default zone: responses do
not change with the server's configuration, and psycopg then builds each `datetime` with
`timezone.utc`, where a named zone (`Etc/UTC`, initdb's pick here) costs a zone conversion
per value (3.5% of a list request's instructions)."""


# JSON and JSONB columns are parsed by pydantic-core's parser rather than the standard
# library's, on every connection of the process: four times faster, and a page of audit
# events spent 6% of its CPU parsing their changes.
set_json_loads(from_json)


class Database:
    """The runtime engine and its session factory (one per process)."""

    def __init__(self, url: URL, settings: Settings) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_recycle=1800,
            connect_args={"application_name": "touchstone", "options": UTC_SESSIONS},
        )
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=TenantSession
        )
        # `core.reads` and `core.writes` run their own BEGIN/COMMIT on autocommit connections
        # of a plain psycopg pool: a checkout from it costs a tenth of SQLAlchemy's. Opened on
        # first use.
        self.direct_pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            url.set(drivername="postgresql").render_as_string(hide_password=False),
            min_size=1,
            max_size=settings.database_pool_size,
            kwargs={
                "autocommit": True,
                "application_name": "touchstone-direct",
                "options": UTC_SESSIONS,
            },
            open=False,
        )
        self._pool_check: asyncio.Task[None] | None = None
        self._direct_slots = asyncio.Semaphore(settings.database_pool_size)
        """One per pool connection: requests beyond the pool's size queue here (_direct_slot)."""

    def session(
        self,
        *,
        org_id: uuid.UUID | None = None,
        user_id: uuid.UUID | None = None,
        tenant_from_entry: bool = False,
    ) -> AsyncSession:
        """`tenant_from_entry`: the session's first statement will be `enter`'s."""
        info = {"org_id": org_id, "user_id": user_id, "tenant_from_entry": tenant_from_entry}
        return self.sessionmaker(info=info)

    @asynccontextmanager
    async def direct_connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """An autocommit psycopg connection, for `core.reads` and `core.writes` (no ORM).

        getconn/putconn rather than the pool's `connection()`, whose `async with connection`
        commits even an autocommit connection (its lock and a wait: 3.5% of a read).
        Those end their own transactions, and putconn rolls back or replaces a connection an
        error or a cancellation left in one.
        """
        if self.direct_pool.closed:  # until the first use (open() takes the pool's lock)
            await self.direct_pool.open()
        await self._direct_slot()
        try:
            connection = await self.direct_pool.getconn()
            try:
                yield connection
            except psycopg.OperationalError:
                # The server went away (a restart): the idle connections are dead too. Test
                # them all now, rather than fail one request on each.
                self._pool_check = asyncio.create_task(self.direct_pool.check())
                raise
            finally:
                await self.direct_pool.putconn(connection)
        finally:
            self._direct_slots.release()

    async def _direct_slot(self) -> None:
        """Wait for a free pool connection here, on one future, rather than inside the pool,
        whose waiting costs a condition, its lock and a timer per request: 3.3% of a list
        request's instructions with 32 clients on a pool of 10. Bounded by the pool's own
        timeout (a 503, as a wait inside the pool would be)."""
        if not self._direct_slots.locked():
            await self._direct_slots.acquire()  # returns at once
            return
        try:
            async with asyncio.timeout(self.direct_pool.timeout):
                await self._direct_slots.acquire()
        except TimeoutError:
            raise PoolTimeout(f"no read connection in {self.direct_pool.timeout:.0f} s") from None

    @asynccontextmanager
    async def transaction(
        self, *, org_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None
    ) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on error."""
        async with self.session(org_id=org_id, user_id=user_id) as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.direct_pool.close()
        await self.engine.dispose()


async def enter(session: AsyncSession, entry: TenantEntry) -> Principal:
    """Authenticate inside the session's transaction and stay in the caller's tenant.

    The entry statement sets the tenant for this transaction; `info` carries it into the
    session's later transactions through the `after_begin` hook.
    """
    connection = await session.connection()
    row = (await connection.exec_driver_sql(entry.sql, entry.params)).one_or_none()
    principal = entry.to_principal(row)
    session.info.update(org_id=principal.org_id, user_id=principal.user_id)
    return principal


async def enter_tenant(session: AsyncSession, org_id: uuid.UUID) -> None:
    """Switch the current transaction (and later ones) to `org_id`.

    Only for the explicit system paths that create a tenant's first rows (a new org).
    """
    session.info["org_id"] = org_id
    await session.execute(text("select set_config('app.org_id', :org, true)"), {"org": str(org_id)})


async def add_unique(session: AsyncSession, row: object, conflict: str) -> None:
    """Insert `row` inside a savepoint; a unique violation becomes a 409, not a dead transaction."""
    async with unique_changes(session, conflict):
        session.add(row)


@asynccontextmanager
async def unique_changes(session: AsyncSession, conflict: str) -> AsyncIterator[None]:
    """Changes made inside are flushed in a savepoint; a unique violation becomes a 409.

    Updates need it as much as inserts: renaming onto a taken name is the same conflict. The
    changes must be made inside: pending ones are flushed before the savepoint begins.
    """
    try:
        async with session.begin_nested():
            yield
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23505":
            raise Conflict(conflict) from exc
        raise
