"""Hot reads in one round trip: authenticate, enter the tenant and read in one message.

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

Use it for the busiest read endpoints; anything that writes goes through `SessionDep`: a
list route opts in with `route_class_override=TenantReadRoute` (see there).

Only public APIs: psycopg's `AsyncClientCursor`, `nextset`, `fetchall` and `connection.info`;
FastAPI's `APIRoute.dependant` and, at start-up, `iter_route_contexts` (FastAPI >= 0.137.2,
where included routers stopped being copied into `app.routes`). What an upgrade could still
change is how FastAPI describes a route's dependencies (`fastapi.dependencies.models
.Dependant`, read by `TenantReadRoute._shape`); tests/core/test_reads.py fails first then.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl
from weakref import WeakKeyDictionary

import structlog
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRouter, RouteContext
from psycopg import AsyncClientCursor, AsyncConnection
from psycopg.errors import DuplicatePreparedStatement
from psycopg.pq import TransactionStatus
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from touchstone.core.auth import Principal, TenantEntry, log_context
from touchstone.core.db import Database
from touchstone.core.deps import (
    EntryDep,
    add_rate_limit_headers,
    api_key_scheme,
    authenticate,
    bearer_scheme,
    dependency_calls,
    get_database,
    identify,
)
from touchstone.core.routing import LimitedRoute

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


def _brackets(nested: bool) -> tuple[str, str]:
    """How a read's transaction begins and ends: its own, or (inside a caller's transaction,
    the tests' per-test one) a savepoint rolled back, so no tenant outlives it."""
    if nested:
        return (
            f"SAVEPOINT {_SAVEPOINT}",
            f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}",
        )
    return "BEGIN", "COMMIT"


async def confirm(database: Database, entry: TenantEntry) -> Principal:
    """The credential's caller as the database sees it now, in one round trip without the
    ORM; `Unauthorized` when the credential is dead. What a live stream re-checks on its
    interval (`core.stream_auth`), so thousands of open streams cost a lookup each."""
    async with database.read_connection() as connection:
        begin, end = _brackets(connection.info.transaction_status != TransactionStatus.IDLE)
        replies = await exchange(connection, [begin, entry.sql, end], entry.params)
    return entry.to_principal(await replies.first_row(1))


class TenantRead:
    """Read-only work for a caller holding `permission`; each `fetch` is one transaction."""

    def __init__(
        self,
        connection: AsyncConnection[Any],
        entry: TenantEntry,
        permission: str,
        hints: PrincipalHints,
        on_caller: Callable[[Hint], None] = lambda _: None,
    ) -> None:
        self.connection = connection
        self.entry = entry
        self.permission = permission
        self.hints = hints
        self.on_caller = on_caller
        self.nested = nested = connection.info.transaction_status != TransactionStatus.IDLE
        self._begin, self._end = _brackets(nested)
        self._rollback = self._end if nested else "ROLLBACK"
        self._open = False

    async def fetch(self, plan: Plan) -> list[Rows]:
        """The result of each planned query, for the caller the database confirmed."""
        hint = self.hints.get(self.entry)
        if hint is not None:
            row, results = await self._in_one_round_trip(plan(hint.principal))
            if row == hint.row:  # the caller is exactly the one the queries were built for
                return self._accept(hint, results)
            self.entry.to_principal(row)  # `Unauthorized` for a dead credential
        confirmed = await self._enter()
        self.hints.remember(self.entry, confirmed)
        return self._accept(confirmed, await self._finish(plan(confirmed.principal)))

    async def _in_one_round_trip(
        self, statements: Statements
    ) -> tuple[tuple[Any, ...] | None, list[Rows]]:
        """Enter and query together: the entry's row (None for a dead credential: then the
        queries saw no tenant, so no rows) and the results."""
        sql, params = await self._prepared(statements)
        replies = await self._send(
            [self._begin, self.entry.sql, *sql, self._end], [*self.entry.params, *params]
        )
        return await replies.first_row(1), [
            await replies.rows(2 + n) for n in range(len(statements))
        ]

    async def _enter(self) -> Hint:
        replies = await self._send([self._begin, self.entry.sql], self.entry.params)
        row = await replies.first_row(1)
        principal = self.entry.to_principal(row)
        principal.ensure(self.permission)  # before any query runs
        assert row is not None  # to_principal refuses None
        return Hint(row, principal, log_context(principal))

    async def _finish(self, statements: Statements) -> list[Rows]:
        """The queries and the end of the transaction, after `_enter`."""
        sql, params = await self._prepared(statements)
        replies = await self._send([*sql, self._end], params)
        return [await replies.rows(n) for n in range(len(statements))]

    async def _prepared(self, statements: Statements) -> tuple[list[str], list[Any]]:
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

    async def _send(self, sql: list[str], params: Sequence[Any]) -> Replies:
        self._open = True  # until the message that ends the transaction has run
        replies = await exchange(self.connection, sql, params)
        self._open = sql[-1] != self._end
        return replies

    def _accept(self, confirmed: Hint, results: list[Rows]) -> list[Rows]:
        confirmed.principal.ensure(self.permission)
        self.on_caller(confirmed)
        return results

    async def close(self) -> None:
        """Roll back a transaction an error left open."""
        if self._open:
            self._open = False
            await self.connection.execute(self._rollback)


def _bind_caller(request: Request, caller: Hint) -> None:
    request.state.principal = caller.principal
    structlog.contextvars.bind_contextvars(**caller.log_context)


def tenant_read(permission: str) -> Callable[..., AsyncIterator[TenantRead]]:
    """Dependency factory: a `TenantRead` for a caller holding `permission`."""

    async def dependency(request: Request, entry: EntryDep) -> AsyncIterator[TenantRead]:
        hints: PrincipalHints = request.app.state.principal_hints
        async with get_database(request).read_connection() as connection:
            read = TenantRead(connection, entry, permission, hints, partial(_bind_caller, request))
            try:
                yield read
            finally:
                await read.close()

    dependency.__name__ = f"read_{permission.replace(':', '_')}"
    dependency.permission = permission  # type: ignore[attr-defined]  # read by the route inventory
    return dependency


class TenantReadRoute(LimitedRoute):
    """A hot read served without FastAPI's per-request dependency resolution.

    The route is declared like any other, with one line more than an ORM list route
    (`route_class_override=TenantReadRoute`), a `read: Annotated[TenantRead, Depends(
    tenant_read(…))]` parameter and one query model `Annotated[Model, Query()]`, so the
    docs, the route inventory and the security suite see its real dependency tree. The
    handler runs exactly that tree itself: `authenticate` (through `identify`), the query
    model, the read. Resolving it generically costs FastAPI about 0.35 ms a request, a third
    of the whole list request. Any other shape is refused at start-up, so the handler can
    never skip something the declaration promises: a further dependency or parameter on the
    route when the route is built, a dependency its router is included with (other than
    `authenticate`, which the read runs anyway) when `bind_routes` checks each route as
    included (`check_inclusion`, through FastAPI's public `iter_route_contexts`).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # The route's own dependency tree: what its router adds is checked by
        # `check_inclusion` at start-up, where FastAPI shows each route as included.
        read_param, read_dependency, query_param, query_model = self._shape(self.dependant)
        read_context, endpoint = asynccontextmanager(read_dependency), self.endpoint

        async def handle(request: Request) -> Response:
            bearer, api_key = await bearer_scheme(request), await api_key_scheme(request)
            entry, window = await identify(request, bearer, api_key)
            try:
                query = query_model.model_validate(_query_values(request))
            except ValidationError as error:
                raise RequestValidationError(list(_in_query(error))) from None
            async with read_context(request, entry) as read:
                response: Response = await endpoint(**{read_param: read, query_param: query})
            add_rate_limit_headers(response, window)  # `authenticate` puts them on the sub-response
            return response

        return handle

    def check_inclusion(self, route: RouteContext) -> None:
        """Refuse an inclusion that adds a dependency the handler would not run."""
        self._shape(route.dependant)

    def _shape(self, dependant: Dependant) -> tuple[str, Callable[..., Any], str, type[BaseModel]]:
        """(read parameter, its dependency, query parameter, query model), or a TypeError."""
        reads = [  # tenant_read() dependencies: generators naming their permission
            d
            for d in dependant.dependencies
            if inspect.isasyncgenfunction(d.call) and hasattr(d.call, "permission")
        ]
        queries = dependant.query_params
        allowed = {authenticate, bearer_scheme, api_key_scheme, *(d.call for d in reads)}
        calls = set(dependency_calls(dependant))
        model = queries[0].field_info.annotation if len(queries) == 1 else None
        if (
            len(reads) != 1
            or not (calls <= allowed and authenticate in calls)
            or not (isinstance(model, type) and issubclass(model, BaseModel))
            or dependant.path_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
        ):
            raise TypeError(
                f"{self.path}: a TenantReadRoute takes one tenant_read() dependency and one "
                "query model, under `authenticate` alone"
            )
        return reads[0].name or "read", reads[0].call, queries[0].name, model  # type: ignore[return-value]


def hot_reads_first(router: APIRouter) -> None:
    """Move the router's `TenantReadRoute`s to the front, keeping the order otherwise.

    FastAPI (0.137 and later) matches an included router's routes one by one, twice a request
    (once to pick the router, once the route), at about 15,000 instructions a route: `GET
    /users`, eleventh in its router, paid 12% of its whole request for it. Call it before the
    router is included; routes added later are not moved.
    """
    router.routes.sort(key=lambda route: not isinstance(route, TenantReadRoute))


def _query_values(request: Request) -> dict[str, str]:
    """The query string as `request.query_params` reads it (latin-1, blank values kept, the
    last of a repeated name wins, as FastAPI takes a scalar), without building Starlette's
    multi-dict: a quarter of the cost."""
    query: bytes = request.scope["query_string"]
    return dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))


def _in_query(error: ValidationError) -> Iterator[dict[str, Any]]:
    """Pydantic's errors, located as FastAPI locates query errors (`("query", name)`)."""
    for detail in error.errors(include_url=False):
        yield {**detail, "loc": ("query", *detail["loc"])}
