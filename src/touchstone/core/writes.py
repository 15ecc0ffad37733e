"""Writes in two round trips, on the same pooled transactions as `core.reads`.

Through the ORM, creating a branch cost six round trips (BEGIN and the caller, a savepoint,
the insert, its release, the audit event, COMMIT) and about 4 ms of Python in SQLAlchemy's
unit of work. A `TenantWrite` sends

    BEGIN; SELECT … FROM auth_enter_session(…)      -- the caller; the tenant is set
    <the claim of the Idempotency-Key>               -- only when the request sent one
    <the changes>; <the audit event>; <the key's stored response>; COMMIT

The caller and the permission are checked before any change is sent, so, unlike a read, a
write never runs on a hint (`core.reads`): a change planned for a stale caller could not be
taken back. Everything a change writes is decided in Python before it is sent (ids,
timestamps, the response), so the response and the key's record travel in the message
that commits. A unique violation there becomes the plan's 409 and nothing is kept; row-level
security applies as on every path, the tenant being the one the entry set.

A route declares `write: Annotated[TenantWrite, Depends(tenant_write("<permission>"))]`
(`idempotent=True` for a creating route) and its service returns a `WritePlan` for the
confirmed caller: `await write.apply(plan)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from fastapi import Request
from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb
from pydantic import BaseModel
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import DeclarativeBase

from touchstone.core.audit import AuditEvent, audit_values
from touchstone.core.auth import Principal, TenantEntry, log_context
from touchstone.core.db import Database, utcnow
from touchstone.core.deps import authenticate, get_database
from touchstone.core.errors import Conflict
from touchstone.core.idempotency import (
    CLAIM,
    IdempotencyHeader,
    IdempotencyKey,
    idempotency_key,
)
from touchstone.core.idempotency_models import IdempotencyRecord
from touchstone.core.reads import (
    CompiledQuery,
    Hint,
    PooledTransaction,
    Statements,
    bind_caller,
    compile_query,
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
        replies = await transaction.send([transaction.begin, self.entry.sql], self.entry.params)
        row = await replies.first_row(1)
        principal = self.entry.to_principal(row)
        principal.ensure(self.permission)
        assert row is not None  # to_principal refuses None
        self.on_caller(Hint(row, principal, log_context(principal)))
        planned = plan(principal)
        statements = [*planned.changes, *((AUDIT_INSERT, row) for row in planned.audit)]
        if self.key is not None:
            statements.append(await self._claim(transaction, principal, planned))
        sql, params = await transaction.prepared(statements)
        try:
            await transaction.send([*sql, transaction.end], params)
        except UniqueViolation as exc:
            if planned.conflict is None:
                raise
            raise Conflict(planned.conflict) from exc
        return planned.result

    async def _claim(
        self, transaction: PooledTransaction, principal: Principal, planned: WritePlan[M]
    ) -> tuple[CompiledQuery, Mapping[str, Any]]:
        """Claim the key (or replay, or refuse: `IdempotencyKey.settle`); the statement that
        stores the response, for the message that commits."""
        assert self.key is not None
        row_id = uuid.uuid4()
        values = self.key.claim_values(principal, row_id)
        while True:
            sql, params = await transaction.prepared([(_CLAIM, values)])
            if await (await transaction.send(sql, params)).first_row(0) is not None:
                break
            sql, params = await transaction.prepared([(_STORED, values)])
            stored = await (await transaction.send(sql, params)).first_row(0)
            if stored is None:  # claimed by a transaction not yet committed
                self.key.settle(0, "", "", {})
            status_code, fingerprint, sealed_body, headers, expires_at, stored_id = stored
            if expires_at > utcnow():
                self.key.settle(status_code, fingerprint, sealed_body, headers)
            sql, params = await transaction.prepared([(_FORGET, {"id": stored_id})])
            await transaction.send(sql, params)
        return _REMEMBER, {
            "id": row_id,
            "status_code": planned.status_code,
            "sealed_body": self.key.sealer.seal(planned.result.model_dump_json()),
            "headers": Jsonb({}),
        }


_KEYS = IdempotencyRecord
_CLAIM = compile_query(CLAIM)
_STORED = compile_query(
    select(
        _KEYS.status_code,
        _KEYS.fingerprint,
        _KEYS.sealed_body,
        _KEYS.headers,
        _KEYS.expires_at,
        _KEYS.id,
    ).where(
        _KEYS.org_id == bindparam("org"),
        _KEYS.principal == bindparam("principal"),
        _KEYS.route == bindparam("route"),
        _KEYS.key == bindparam("key"),
    )
)
_FORGET = compile_query(delete(_KEYS).where(_KEYS.id == bindparam("id")))
_REMEMBER = compile_query(
    update(_KEYS)
    .where(_KEYS.id == bindparam("id"))
    .values(
        status_code=bindparam("status_code"),
        sealed_body=bindparam("sealed_body"),
        headers=bindparam("headers"),
    )
)


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
        return TenantWrite(
            get_database(request),
            await authenticate(request),
            permission,
            await idempotency_key(request, key),
            partial(bind_caller, request),
        )

    dependency = idempotent_write if idempotent else write
    dependency.__name__ = f"write_{permission.replace(':', '_')}"
    dependency.permission = permission  # type: ignore[attr-defined]  # read by the route inventory
    dependency.authenticates = True  # type: ignore[attr-defined]  # see deps.authenticates
    return dependency
