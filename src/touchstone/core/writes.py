"""Writes in two round trips, on the same pooled transactions as `core.reads`.

Through the ORM, creating a branch cost six round trips (BEGIN and the caller, a savepoint,
the insert, its release, the audit event, COMMIT) and about 4 ms of Python in SQLAlchemy's
unit of work. A `TenantWrite` sends

    BEGIN; SELECT … FROM auth_enter_session(…)       -- the caller; the tenant is set
    <the Idempotency-Key's claim>; <the changes>; <their audit events>; COMMIT

The caller and the permission are checked before any change is sent, so, unlike a read, a
write never runs on a hinted caller (`core.reads`): a change planned for a stale caller
could not be taken back. Everything a change writes is decided in Python before it is sent
(ids, timestamps, the response), so a request's key is claimed already holding the sealed
response it will have if the message commits; a key that was taken fails the claim, which
makes PostgreSQL skip the rest of the message, and the stored outcome is then read in a
transaction of its own. A unique violation becomes the plan's 409 and nothing is kept.
Row-level security applies as on every path, the tenant being the one the entry set.

A route declares `write: Annotated[TenantWrite, Depends(tenant_write("<permission>"))]`
(`idempotent=True` for a creating route) and its service returns a `WritePlan` for the
confirmed caller: `await write.apply(plan)`. A caller without the permission is refused
while dependencies resolve, before the body is validated (`core.reads.permitted`), and the
plan checks the input for the confirmed caller, so a 403 always comes before a 422.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, NoReturn, TypeVar

from fastapi import Request
from psycopg.errors import DivisionByZero, UniqueViolation
from psycopg.types.json import Jsonb
from pydantic import BaseModel
from sqlalchemy import Table, bindparam, func, insert, literal_column, select
from sqlalchemy.orm import DeclarativeBase

from touchstone.core.audit import AuditEvent, audit_values
from touchstone.core.auth import Principal, TenantEntry, log_context
from touchstone.core.db import Database
from touchstone.core.deps import authenticate, get_database
from touchstone.core.errors import Conflict
from touchstone.core.idempotency import (
    CLAIMED,
    STORED,
    IdempotencyHeader,
    IdempotencyKey,
    IdempotencyKeyInFlight,
    idempotency_key,
)
from touchstone.core.reads import (
    CompiledQuery,
    Hint,
    PooledTransaction,
    Statements,
    bind_caller,
    compile_query,
    permitted,
)

M = TypeVar("M", bound=BaseModel)


def insert_query(entity: type[DeclarativeBase] | Table, columns: Sequence[str]) -> CompiledQuery:
    """`INSERT INTO <entity> (<columns>) VALUES (…)`, compiled once (a module constant); the
    values come from each plan by column name."""
    table = entity if isinstance(entity, Table) else entity.__table__
    assert isinstance(table, Table)
    return compile_query(insert(table).values({name: bindparam(name) for name in columns}))


AUDIT_INSERT = insert_query(AuditEvent, tuple(AuditEvent.__table__.columns.keys()))


@dataclass(slots=True)
class WritePlan(Generic[M]):
    """What one write changes, and what it answers once committed."""

    changes: Statements
    result: M
    status_code: int = 201
    conflict: str | None = None
    """The 409's message when a change breaks a unique constraint (None: not expected)."""
    audit: list[dict[str, Any]] = field(default_factory=list)

    def audited(
        self,
        principal: Principal,
        action: str,
        object_type: str,
        object_id: object,
        changes: Mapping[str, Any] | None = None,
    ) -> WritePlan[M]:
        """The plan with an audit event of `principal`'s, written in the same transaction."""
        values = audit_values(principal, action, object_type, object_id, changes)
        self.audit.append({**values, "changes": Jsonb(values["changes"])})
        return self


class TenantWrite:
    """One write for a caller holding `permission`, on a connection borrowed for it alone."""

    def __init__(
        self,
        database: Database,
        entry: TenantEntry,
        permission: str,
        key: IdempotencyKey | None,
        on_caller: Callable[[Hint], None],
    ) -> None:
        self.database = database
        self.entry = entry
        self.permission = permission
        self.key = key
        self.on_caller = on_caller

    async def apply(self, plan: Callable[[Principal], WritePlan[M]]) -> M:
        """Run `plan`'s changes for the confirmed caller and commit; its result."""
        async with self.database.direct_connection() as connection:
            transaction = PooledTransaction(connection)
            try:
                return await self._apply(transaction, plan)
            finally:
                await transaction.close()

    async def _apply(
        self, transaction: PooledTransaction, plan: Callable[[Principal], WritePlan[M]]
    ) -> M:
        principal = await self._enter(transaction)
        planned = plan(principal)
        statements = [*planned.changes, *((AUDIT_INSERT, row) for row in planned.audit)]
        if self.key is not None:  # claimed with the outcome it has if this commits
            values = self.key.claim_values(principal, planned.result, planned.status_code)
            statements.insert(0, (_CLAIM, values))
        sql, params = await transaction.prepared(statements)
        try:
            await transaction.send([*sql, transaction.end], params)
        except DivisionByZero:
            if self.key is None:  # not the claim's: a plan's own statement failed
                raise
            await transaction.close()  # the claim found the key taken

            await self._settle(transaction, principal)
        except UniqueViolation as exc:
            if planned.conflict is None:
                raise
            raise Conflict(planned.conflict) from exc
        return planned.result

    async def _enter(self, transaction: PooledTransaction) -> Principal:
        """Begin, enter the caller's tenant and check the caller: before any change."""
        replies = await transaction.send([transaction.begin, self.entry.sql], self.entry.params)
        row = await replies.first_row(1)
        principal = self.entry.to_principal(row)
        principal.ensure(self.permission)
        assert row is not None  # to_principal refuses None
        self.on_caller(Hint(row, principal, log_context(principal)))
        return principal

    async def _settle(self, transaction: PooledTransaction, principal: Principal) -> NoReturn:
        """The key's stored outcome, read in a transaction of its own (the write's was rolled
        back): replayed, or refused (`IdempotencyKey.settle`)."""
        assert self.key is not None
        await self._enter(transaction)
        sql, params = await transaction.prepared([(_STORED, self.key.owner(principal))])
        stored = await (await transaction.send([*sql, transaction.end], params)).first_row(0)
        if stored is None:  # claimed by a transaction not yet committed
            raise IdempotencyKeyInFlight("Retry once the first request has finished")
        self.key.settle(*stored)


_CLAIM = compile_query(select(literal_column("1") / func.count()).select_from(CLAIMED))
"""The key's claim, failing (division by zero) when it was taken, so that PostgreSQL skips
the rest of the message: the changes are sent with it, in one round trip."""
_STORED = compile_query(STORED)


def tenant_write(
    permission: str, *, idempotent: bool = False
) -> Callable[..., Coroutine[Any, Any, TenantWrite]]:
    """Dependency factory: a `TenantWrite` for a caller holding `permission`; with
    `idempotent`, one that honours an `Idempotency-Key` header (declared in OpenAPI)."""

    async def write(request: Request) -> TenantWrite:
        return await write_for(request, None)

    async def idempotent_write(request: Request, key: IdempotencyHeader = None) -> TenantWrite:
        return await write_for(request, key)

    async def write_for(request: Request, key: str | None) -> TenantWrite:
        entry = await authenticate(request)
        await permitted(request, entry, permission)
        return TenantWrite(
            get_database(request),
            entry,
            permission,
            await idempotency_key(request, key),
            partial(bind_caller, request),
        )

    dependency = idempotent_write if idempotent else write
    dependency.__name__ = f"write_{permission.replace(':', '_')}"
    dependency.permission = permission  # type: ignore[attr-defined]  # read by the route inventory
    dependency.authenticates = True  # type: ignore[attr-defined]  # see deps.authenticates
    return dependency
