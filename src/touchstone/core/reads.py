"""Hot reads in two round trips: enter the tenant, then the queries and the commit.

Through the ORM a list endpoint costs five round trips (BEGIN and the tenant, the
principal, the rows, the total, COMMIT) and several milliseconds of Python in SQLAlchemy's
async bridge. A `TenantRead` runs on the same pool's raw psycopg connection instead:

    BEGIN; SELECT … FROM auth_enter_session(…)      -- the caller's row; the tenant is set
    <query>; <query>; COMMIT                         -- after the permission check

Statements are SQLAlchemy Core compiled once per shape (`compile_query`) and bound on the
client by psycopg, so a batch of several statements is one simple-protocol message.
Row-level security applies exactly as on the ORM path: the tenant is the one the entry
function set for this transaction, and it vanishes at COMMIT or ROLLBACK. Inside an enclosing
transaction (the tests' per-test one) the read joins it as a savepoint and rolls back to
it, so no tenant outlives the request there either.

Use it for the busiest read endpoints; anything that writes goes through `SessionDep`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Request
from psycopg import AsyncClientCursor, AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from touchstone.core.auth import Principal, TenantEntry
from touchstone.core.deps import EntryDep, get_database

_DIALECT = PGDialect_psycopg(paramstyle="format")  # type: ignore[no-untyped-call]
_SAVEPOINT = "tenant_read"


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """SQL with positional `%s` placeholders and the names that fill them, in order."""

    sql: str
    names: tuple[str, ...]
    literals: Mapping[str, Any]
    """Values the statement itself carries (e.g. `is_active == True`)."""

    def bind(self, values: Mapping[str, Any]) -> list[Any]:
        merged = {**self.literals, **values}
        return [merged[name] for name in self.names]


def compile_query(statement: ClauseElement) -> CompiledQuery:
    """Compile once per query shape (cache the result); values come with each `fetch`."""
    compiled = statement.compile(dialect=_DIALECT)
    assert isinstance(compiled, SQLCompiler)
    return CompiledQuery(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))


Rows = list[dict[str, Any]]


class TenantRead:
    """One read-only unit of work, authenticated and inside the caller's tenant.

    On an idle connection it is a transaction of its own; inside an enclosing one it is a
    savepoint that is rolled back, so either way no tenant setting outlives it.
    """

    principal: Principal
    """Set by `enter`."""

    def __init__(self, connection: AsyncConnection[Any]) -> None:
        self.connection = connection
        self.nested = connection.info.transaction_status != TransactionStatus.IDLE
        self._open = False

    async def enter(self, entry: TenantEntry) -> Principal:
        """Begin and run the entry statement: one round trip, then the caller is known."""
        if self.nested:
            begin = f"SAVEPOINT {_SAVEPOINT}"
        else:
            await self.connection.set_autocommit(True)  # BEGIN/COMMIT travel with our SQL
            begin = "BEGIN"
        self._open = True
        cursor = AsyncClientCursor(self.connection)
        await cursor.execute(f"{begin}; {entry.sql}", entry.params)
        cursor.nextset()
        self.principal = entry.to_principal(await cursor.fetchone())
        return self.principal

    async def fetch(self, *queries: tuple[CompiledQuery, Mapping[str, Any]]) -> list[Rows]:
        """Run the queries and end the transaction in one round trip; call it once."""
        if not self._open:
            raise RuntimeError("a TenantRead fetches once, after enter()")
        sql = "; ".join([*(query.sql for query, _ in queries), self._end_sql()])
        params = [value for query, values in queries for value in query.bind(values)]
        self._open = False
        cursor = AsyncClientCursor(self.connection, row_factory=dict_row)
        try:
            await cursor.execute(sql, params)
        except BaseException:
            self._open = True  # still to be rolled back by close()
            raise
        results = [await cursor.fetchall()]
        while len(results) < len(queries) and cursor.nextset():
            results.append(await cursor.fetchall())
        return results

    async def close(self) -> None:
        """Roll back what did not end, and hand the connection back as the pool lent it."""
        if self._open:
            self._open = False
            await self.connection.execute(self._end_sql(rollback=True))
        if self.connection.autocommit:
            await self.connection.set_autocommit(False)

    def _end_sql(self, *, rollback: bool = False) -> str:
        if self.nested:
            return f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}"
        return "ROLLBACK" if rollback else "COMMIT"


def tenant_read(permission: str) -> Callable[..., AsyncIterator[TenantRead]]:
    """Dependency factory: a `TenantRead` for a caller holding `permission`."""

    async def dependency(request: Request, entry: EntryDep) -> AsyncIterator[TenantRead]:
        async with get_database(request).read_connection() as connection:
            read = TenantRead(connection)
            try:
                principal = await read.enter(entry)
                request.state.principal = principal
                structlog.contextvars.bind_contextvars(
                    org_id=str(principal.org_id), principal=f"{principal.kind}:{principal.id}"
                )
                principal.ensure(permission)
                yield read
            finally:
                await read.close()

    dependency.__name__ = f"read_{permission.replace(':', '_')}"
    dependency.permission = permission  # type: ignore[attr-defined]  # read by the route inventory
    return dependency
