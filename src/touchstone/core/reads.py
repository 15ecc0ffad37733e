"""Reads in one round trip: authenticate, enter the tenant and read in one message.

Through the ORM a list endpoint costs five round trips (BEGIN and the tenant, the
principal, the rows, the total, COMMIT) and several milliseconds of Python in SQLAlchemy's
async bridge. A `TenantRead` sends, on a pooled autocommit psycopg connection,

    BEGIN; SELECT … FROM auth_enter_session(…);      -- the caller's row; the tenant is set
    <query>; …; COMMIT

as one simple-protocol message; on pooled connections each query is an EXECUTE of a
statement the connection PREPAREd on its first use, so PostgreSQL plans it once. The queries
depend on the caller (its org, its branch), so they are built for the principal this process
last saw for the same credential: a hint, never trusted. The caller's row comes back with
the results, and the results are used only if that row is exactly the row the hint was made
from (the principal is a function of it) and the principal holds the permission. Otherwise
(the first read of a credential in this process, a changed role or branch, a revoked
session) they are dropped, and the read runs in two round trips: enter, then the queries
built for the principal just read. Rows come back as tuples, in each query's column order.

Row-level security applies exactly as on the ORM path: the tenant is the one the entry
function set for this transaction, and it vanishes at COMMIT. Inside an enclosing
transaction (the tests' per-test one) the read is a savepoint that is rolled back, so no
tenant outlives the request there either. Statements are SQLAlchemy Core compiled once per
shape (`compile_query`) and bound on the client by psycopg.

Every read route works this way. It declares one dependency, `read: Annotated[TenantRead,
Depends(tenant_read("<permission>"))]`, which takes the request alone (FastAPI resolves
each dependency on every request, and their cost was most of a read's), and each `fetch`
borrows a pooled connection for its one transaction. Anything that writes goes through
`SessionDep`.

Only public APIs: psycopg's `AsyncClientCursor`, `nextset`, `fetchall` and `connection.info`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

import structlog
from fastapi import Request
from psycopg import AsyncClientCursor, AsyncConnection
from psycopg.errors import DuplicatePreparedStatement
from psycopg.pq import TransactionStatus
from pydantic import BaseModel
from sqlalchemy import Select, bindparam
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from touchstone.core.auth import Principal, TenantEntry, log_context
from touchstone.core.db import Database
from touchstone.core.deps import authenticate, get_database
from touchstone.core.errors import AppError, NotFound

_DIALECT = PGDialect_psycopg(paramstyle="format")  # type: ignore[no-untyped-call]
_NUMBERED = PGDialect_psycopg(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
_SAVEPOINT = "tenant_read"
_PREPARED: WeakKeyDictionary[AsyncConnection[Any], set[str]] = WeakKeyDictionary()
"""The statements each pooled connection has prepared (PREPARE outlives transactions)."""
_CURSORS: WeakKeyDictionary[AsyncConnection[Any], AsyncClientCursor[tuple[Any, ...]]] = (
    WeakKeyDictionary()
)
"""One cursor per connection, kept: making one (and its adapters) is a third of its cost."""


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """One query shape, as SQL with `%s` placeholders (inside a caller's transaction) and as
    a statement to PREPARE once per pooled connection and EXECUTE after that."""

    sql: str
    names: tuple[str, ...]
    """The values filling the `%s`, in order."""
    literals: Mapping[str, Any]
    """Values the statement itself carries (e.g. `is_active == True`)."""
    name: str
    """The prepared statement's name, derived from its SQL."""
    prepare: str
    """`PREPARE <name> AS …` with `$n` parameters."""
    execute: str
    """`EXECUTE <name>(%s, …)`."""
    execute_names: tuple[str, ...]

    def bind(self, values: Mapping[str, Any], names: tuple[str, ...] | None = None) -> list[Any]:
        merged = {**self.literals, **values}
        return [merged[name] for name in (self.names if names is None else names)]


def compile_query(statement: ClauseElement) -> CompiledQuery:
    """Compile once per query shape (cache the result); values come with each `fetch`."""
    compiled = statement.compile(dialect=_DIALECT)
    numbered = statement.compile(dialect=_NUMBERED)
    assert isinstance(compiled, SQLCompiler)
    assert isinstance(numbered, SQLCompiler)
    name = "tr_" + hashlib.sha256(str(numbered).encode()).hexdigest()[:24]
    execute_names = tuple(numbered.positiontup or ())
    arguments = f"({', '.join(['%s'] * len(execute_names))})" if execute_names else ""
    return CompiledQuery(
        sql=str(compiled),
        names=tuple(compiled.positiontup or ()),
        literals=dict(compiled.params),
        name=name,
        prepare=f"PREPARE {name} AS {numbered}",
        execute=f"EXECUTE {name}{arguments}",
        execute_names=execute_names,
    )


AnySelect = Select[*tuple[Any, ...]]
Rows = list[tuple[Any, ...]]
"""A result as PostgreSQL sent it: tuples in the query's column order (cheaper than dicts)."""
Statements = Sequence[tuple[CompiledQuery, Mapping[str, Any]]]
Plan = Callable[[Principal], Statements]
"""The queries to run for a given caller (its org, its branch scope)."""


class Replies:
    """What PostgreSQL answered to each statement of one message, read in order."""

    def __init__(self, cursor: AsyncClientCursor[tuple[Any, ...]]) -> None:
        self._cursor = cursor
        self._at = 0

    async def rows(self, statement: int) -> Rows:
        """The rows of the `statement`-th statement (0 is the first); statements are read
        in order, as the cursor moves forward only."""
        if statement < self._at:
            raise ValueError(f"statement {statement} was passed already (at {self._at})")
        while self._at < statement:
            if not self._cursor.nextset():
                raise ValueError(f"the message had no statement {statement}")
            self._at += 1
        return await self._cursor.fetchall()

    async def first_row(self, statement: int) -> tuple[Any, ...] | None:
        rows = await self.rows(statement)
        return rows[0] if rows else None


async def exchange(
    connection: AsyncConnection[Any], sql: list[str], params: Sequence[Any]
) -> Replies:
    """Send the statements as one simple-protocol message, the values quoted on the client,
    and keep every statement's result; a failed statement raises its psycopg error
    (PostgreSQL skips the rest of the message). The connection must be in autocommit mode
    (the read pool's are), so psycopg adds no BEGIN of its own.

    A psycopg `AsyncClientCursor` does exactly this with public API: values bound on the
    client, the text sent with `PQsendQuery` (several statements in one message), each
    statement's result kept for `nextset()`. Its bookkeeping over bare libpq calls (the
    connection lock, parsing the text for placeholders, selecting each result) costs about
    20 µs of CPU a read, 4% of a list request: measured against the libpq-level version
    this replaced (on psycopg 3.3), which reached into psycopg's undocumented generators
    and adapters and would have broken silently on an upgrade.
    """
    cursor = _CURSORS.get(connection)
    if cursor is None:
        cursor = _CURSORS[connection] = AsyncClientCursor(connection)
    await cursor.execute("; ".join(sql), params)
    return Replies(cursor)


@dataclass(frozen=True, slots=True)
class Hint:
    row: tuple[Any, ...]
    """What the entry statement returned: the principal is a function of it."""
    principal: Principal
    log_context: dict[str, str]
    """`log_context(principal)`, formatted once rather than on every request."""


class PrincipalHints:
    """The caller last read for each credential, bounded (the oldest goes first)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._hints: dict[tuple[str, tuple[Any, ...]], Hint] = {}

    def get(self, entry: TenantEntry) -> Hint | None:
        return self._hints.get((entry.sql, entry.params))

    def remember(self, entry: TenantEntry, hint: Hint) -> None:
        key = (entry.sql, entry.params)
        if key not in self._hints and len(self._hints) >= self._size:
            del self._hints[next(iter(self._hints))]
        self._hints[key] = hint


_NESTED_END = (
    f"RELEASE SAVEPOINT {_SAVEPOINT}; "
    "SELECT set_config('app.org_id', '', true), set_config('app.user_id', '', true)"
)
_NESTED_ROLLBACK = f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}"


def _brackets(nested: bool) -> tuple[str, str]:
    """How a read's transaction begins and ends: its own, or (inside a caller's transaction,
    the tests' per-test one) a savepoint released with the tenant cleared, so no tenant
    outlives it and what the entry wrote (an API key's `last_used_at`) stays, as a COMMIT
    would keep it."""
    if nested:
        return f"SAVEPOINT {_SAVEPOINT}", _NESTED_END
    return "BEGIN", "COMMIT"


async def confirm(database: Database, entry: TenantEntry) -> Principal:
    """The credential's caller as the database sees it now, in one round trip without the
    ORM; `Unauthorized` when the credential is dead. What a live stream re-checks on its
    interval (`core.stream_auth`), so thousands of open streams cost a lookup each."""
    return (await confirmed_caller(database, entry)).principal


async def confirmed_caller(database: Database, entry: TenantEntry) -> Hint:
    """`confirm`, with the entry's row the principal was made from."""
    async with database.direct_connection() as connection:
        begin, end = _brackets(connection.info.transaction_status != TransactionStatus.IDLE)
        replies = await exchange(connection, [begin, entry.sql, end], entry.params)
    row = await replies.first_row(1)
    principal = entry.to_principal(row)
    assert row is not None  # to_principal refuses None
    return Hint(row, principal, log_context(principal))


async def permitted(request: Request, entry: TenantEntry, permission: str) -> None:
    """Refuse a caller without `permission` (403) while FastAPI still resolves dependencies,
    so before it validates the body: a caller may not learn what a route accepts. Free when
    this process last saw the caller holding it (a hint: the write checks it again); else
    one round trip, which also refreshes the hint."""
    hints: PrincipalHints = request.app.state.principal_hints
    hint = hints.get(entry)
    if hint is None or not hint.principal.can(permission):
        hint = await confirmed_caller(get_database(request), entry)
        hints.remember(entry, hint)
        hint.principal.ensure(permission)


class TenantRead:
    """Read-only work for a caller holding `permission` (None: any caller); each `fetch` is
    one transaction, on a connection borrowed for it alone (a handler's other awaits hold
    none)."""

    def __init__(
        self,
        database: Database,
        entry: TenantEntry,
        permission: str | None,
        hints: PrincipalHints,
        on_caller: Callable[[Hint], None] = lambda _: None,
    ) -> None:
        self.database = database
        self.entry = entry
        self.permission = permission
        self.hints = hints
        self.on_caller = on_caller
        self.principal: Principal | None = None
        """The caller as the last `fetch` confirmed it."""

    async def fetch(self, plan: Plan) -> list[Rows]:
        """The result of each planned query, for the caller the database confirmed."""
        async with self.database.direct_connection() as connection:
            transaction = PooledTransaction(connection)
            try:
                return await self._fetch(transaction, plan)
            finally:
                await transaction.close()

    async def _fetch(self, transaction: PooledTransaction, plan: Plan) -> list[Rows]:
        hint = self.hints.get(self.entry)
        statements = _planned(plan, hint.principal) if hint is not None else None
        if hint is not None and statements is not None:
            row, results = await self._in_one_round_trip(transaction, statements)
            if row == hint.row:  # the caller is exactly the one the queries were built for
                return self._accept(hint, results)
            self.entry.to_principal(row)  # `Unauthorized` for a dead credential
        confirmed = await self._enter(transaction)
        self.hints.remember(self.entry, confirmed)
        return self._accept(confirmed, await self._finish(transaction, plan(confirmed.principal)))

    async def _in_one_round_trip(
        self, transaction: PooledTransaction, statements: Statements
    ) -> tuple[tuple[Any, ...] | None, list[Rows]]:
        """Enter and query together: the entry's row (None for a dead credential: then the
        queries saw no tenant, so no rows) and the results."""
        sql, params = await transaction.prepared(statements)
        replies = await transaction.send(
            [transaction.begin, self.entry.sql, *sql, transaction.end],
            [*self.entry.params, *params],
        )
        return await replies.first_row(1), [
            await replies.rows(2 + n) for n in range(len(statements))
        ]

    async def _enter(self, transaction: PooledTransaction) -> Hint:
        replies = await transaction.send([transaction.begin, self.entry.sql], self.entry.params)
        row = await replies.first_row(1)
        principal = self.entry.to_principal(row)
        if self.permission is not None:
            principal.ensure(self.permission)  # before any query runs
        assert row is not None  # to_principal refuses None
        return Hint(row, principal, log_context(principal))

    async def _finish(self, transaction: PooledTransaction, statements: Statements) -> list[Rows]:
        """The queries and the end of the transaction, after `_enter`."""
        sql, params = await transaction.prepared(statements)
        replies = await transaction.send([*sql, transaction.end], params)
        return [await replies.rows(n) for n in range(len(statements))]

    def _accept(self, confirmed: Hint, results: list[Rows]) -> list[Rows]:
        if self.permission is not None:
            confirmed.principal.ensure(self.permission)
        self.principal = confirmed.principal
        self.on_caller(confirmed)
        return results


def _planned(plan: Plan, principal: Principal) -> Statements | None:
    """The plan's statements for a hinted caller; None when planning refused the request
    (an unknown sort): the caller is confirmed first, so a dead credential still answers
    401 and a caller without the permission 403, and the plan then refuses it again."""
    try:
        return plan(principal)
    except AppError:
        return None


class PooledTransaction:
    """One read's transaction on a borrowed connection: its brackets, its prepared
    statements, and the rollback of one an error left open."""

    def __init__(self, connection: AsyncConnection[Any]) -> None:
        self.connection = connection
        self.nested = nested = connection.info.transaction_status != TransactionStatus.IDLE
        self.begin, self.end = _brackets(nested)
        self._rollback = _NESTED_ROLLBACK if nested else "ROLLBACK"
        self._open = False

    async def prepared(self, statements: Statements) -> tuple[list[str], list[Any]]:
        """Each query as EXECUTE of a statement this connection prepared on first use, so
        PostgreSQL plans it once rather than on every read (half its CPU per read here);
        inside a caller's transaction, the SQL itself."""
        if self.nested:
            values = [v for query, bound in statements for v in query.bind(bound)]
            return [query.sql for query, _ in statements], values
        prepared = _PREPARED.setdefault(self.connection, set())
        for query, _ in statements:
            if query.name not in prepared:
                with contextlib.suppress(DuplicatePreparedStatement):
                    await self.connection.execute(query.prepare)
                prepared.add(query.name)
        values = [v for query, bound in statements for v in query.bind(bound, query.execute_names)]
        return [query.execute for query, _ in statements], values

    async def send(self, sql: list[str], params: Sequence[Any]) -> Replies:
        self._open = True  # until the message that ends the transaction has run
        replies = await exchange(self.connection, sql, params)
        self._open = sql[-1] != self.end
        return replies

    async def close(self) -> None:
        """Roll back a transaction an error left open."""
        if self._open:
            self._open = False
            await self.connection.execute(self._rollback)


def bind_caller(request: Request, caller: Hint) -> None:
    request.state.principal = caller.principal
    structlog.contextvars.bind_contextvars(**caller.log_context)


def read_for(request: Request, entry: TenantEntry, permission: str | None) -> TenantRead:
    """A `TenantRead` for the request's caller, whose confirmed principal lands on
    `request.state` and in the log context; `tenant_read` is the dependency form."""
    hints: PrincipalHints = request.app.state.principal_hints
    return TenantRead(
        get_database(request), entry, permission, hints, partial(bind_caller, request)
    )


def tenant_read(
    permission: str | None,
) -> Callable[[Request], Coroutine[Any, Any, TenantRead]]:
    """Dependency factory: a `TenantRead` for a caller holding `permission` (checked with
    the caller's row, before any result is used; None: any caller). It takes the request
    alone: the entry is `authenticate`'s, which its router ran already."""

    async def dependency(request: Request) -> TenantRead:
        return read_for(request, await authenticate(request), permission)

    dependency.__name__ = f"read_{(permission or 'caller').replace(':', '_')}"
    dependency.permission = permission  # type: ignore[attr-defined]  # read by the route inventory
    dependency.authenticates = True  # type: ignore[attr-defined]  # see deps.authenticates
    return dependency


@dataclass(frozen=True, slots=True)
class ItemQuery:
    """A query selecting a response model's fields, in order, compiled once: its rows read
    as the model's items."""

    query: CompiledQuery
    fields: tuple[str, ...]

    def items(self, rows: Rows) -> list[dict[str, Any]]:
        return [dict(zip(self.fields, row, strict=True)) for row in rows]


def columns_for(item: type[BaseModel], entity: Any) -> list[Any]:
    """The columns of an ORM `entity` named as `item`'s fields, in order, for `select`."""
    return [getattr(entity, name) for name in item.model_fields]


def item_query(query: AnySelect, item: type[BaseModel]) -> ItemQuery:
    """Compile `query` (at import: a module constant) for reading `item`s; it must select
    the model's fields by name and in order, so a renamed field fails here, not in a
    response."""
    fields, columns = tuple(item.model_fields), [c.key for c in query.selected_columns]
    if list(fields) != columns:
        raise TypeError(f"the query selects {columns}, not the fields of {item.__name__}")
    return ItemQuery(compile_query(query), fields)


def row_query(query: AnySelect) -> ItemQuery:
    """A query whose rows read as mappings of its own column names (no response model)."""
    return ItemQuery(compile_query(query), tuple(str(c.key) for c in query.selected_columns))


@dataclass(frozen=True, slots=True)
class BranchScoped:
    """A query compiled twice: for an org-wide caller, and limited to a branch-bound
    caller's branch (`Principal.branch_scope`)."""

    everywhere: ItemQuery
    in_branch: ItemQuery

    def bound(
        self, principal: Principal, values: Mapping[str, Any]
    ) -> tuple[ItemQuery, dict[str, Any]]:
        """The query for the caller, with its org (and branch) among the values."""
        bound = {**values, "org_id": principal.org_id}
        if (scope := principal.branch_scope) is not None:
            return self.in_branch, {**bound, "branch_id": scope}
        return self.everywhere, bound


def branch_scoped(
    query: AnySelect, branch: Any, item: type[BaseModel] | None = None
) -> BranchScoped:
    """`query` (bound to `bindparam("org_id")`) as is, and with `branch` (the column that
    names a row's branch) equal to `bindparam("branch_id")`; with `item`, checked to select
    that model's fields (`item_query`), else read by column names (`row_query`)."""

    def compile(variant: AnySelect) -> ItemQuery:
        return row_query(variant) if item is None else item_query(variant, item)

    return BranchScoped(compile(query), compile(query.where(branch == bindparam("branch_id"))))


ItemPlan = Callable[[Principal], tuple[ItemQuery, Mapping[str, Any]]]
"""The query and its values for a caller (its org, its branch scope)."""


async def read_items(read: TenantRead, plan: ItemPlan) -> list[dict[str, Any]]:
    """Every row of the planned query, as the item model's fields."""
    planned: list[ItemQuery] = []  # the last one is the plan whose rows were kept

    def statements(principal: Principal) -> Statements:
        query, values = plan(principal)
        planned.append(query)
        return [(query.query, values)]

    (rows,) = await read.fetch(statements)
    return planned[-1].items(rows)


async def read_item(read: TenantRead, plan: ItemPlan, missing: str | NotFound) -> dict[str, Any]:
    """The one row of the planned query; `missing` when there is none (another tenant's id
    included: row-level security hides it): a module's own `NotFound`, or the message of a
    plain one."""
    items = await read_items(read, plan)
    if not items:
        raise NotFound(missing) if isinstance(missing, str) else missing
    return items[0]
