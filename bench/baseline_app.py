"""The comparison points: bare FastAPI endpoints doing the least a real request must.

`GET /api/v1/users` serves a captured copy of the user page: no auth, no middleware, no
database. What is left is uvicorn, FastAPI routing and the serialisation of a declared
Pydantic response model that mirrors `Page[MemberOut]`, so the difference to Touchstone is
exactly what a real request adds. The page is read from the file named by BENCH_PAYLOAD,
written by the benchmark from a real response.

`POST /api/v1/branches` (only when BENCH_DATABASE_URL is set) validates a JSON body with a
Pydantic model, inserts one row with psycopg from a pool as large as Touchstone's, and
returns it with 201: what creating a branch costs without auth, tenancy, audit or
idempotency. Its table is a scratch copy of `branches` that the benchmark creates
(`create_scratch_table`), never a migration.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import uvicorn
from fastapi import FastAPI
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, StringConstraints

from touchstone.core.http_server import uvicorn_options

PAYLOAD_ENV = "BENCH_PAYLOAD"
DATABASE_ENV = "BENCH_DATABASE_URL"
"""A libpq URL of the runtime role, the one Touchstone's requests connect as."""
ORG_ENV = "BENCH_ORG_ID"
"""The org the rows belong to: the bare endpoint has no caller to take it from."""
POOL_SIZE_ENV = "BENCH_POOL_SIZE"
SCRATCH_TABLE = "bench_branches"
_INSERT = sql.SQL(
    "insert into {table} (org_id, name, code) values (%s, %s, %s) "
    "returning id, name, code, is_active, created_at"
).format(table=sql.Identifier(SCRATCH_TABLE))


class Member(BaseModel):
    """Field for field `touchstone.identity.schemas.MemberOut`."""

    id: uuid.UUID
    email: str
    full_name: str
    role: str
    branch_id: uuid.UUID | None
    is_active: bool
    created_at: datetime


class MemberPage(BaseModel):
    """Field for field `touchstone.core.pagination.Page[MemberOut]`."""

    items: list[Member]
    total: int
    limit: int
    offset: int


class BranchIn(BaseModel):
    """The fields of `touchstone.identity.schemas.BranchCreate`, with their constraints."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class Branch(BaseModel):
    """Field for field `touchstone.identity.schemas.BranchOut`."""

    id: uuid.UUID
    name: str
    code: str
    is_active: bool
    created_at: datetime


def create_scratch_table(admin_url: str, runtime_role: str) -> None:
    """The columns, keys and defaults of `branches`, writable by the runtime role."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL(
                "create table if not exists {table} ("
                " id uuid primary key default gen_random_uuid(),"
                " org_id uuid not null references orgs (id) on delete cascade,"
                " name varchar(200) not null,"
                " code varchar(40) not null,"
                " is_active boolean not null default true,"
                " created_at timestamptz not null default now(),"
                " updated_at timestamptz not null default now(),"
                " unique (org_id, code))"
            ).format(table=sql.Identifier(SCRATCH_TABLE))
        )
        connection.execute(
            sql.SQL("create index if not exists {index} on {table} (org_id)").format(
                index=sql.Identifier(f"ix_{SCRATCH_TABLE}_org_id"),
                table=sql.Identifier(SCRATCH_TABLE),
            )
        )
        connection.execute(
            sql.SQL("grant select, insert on {table} to {role}").format(
                table=sql.Identifier(SCRATCH_TABLE), role=sql.Identifier(runtime_role)
            )
        )


Pool = AsyncConnectionPool[psycopg.AsyncConnection[dict[str, Any]]]


def _add_insert(app: FastAPI, pool: Pool, org_id: uuid.UUID) -> None:
    @app.post("/api/v1/branches", response_model=Branch, status_code=201)
    async def create_branch(body: BranchIn) -> Branch:
        # The connection's context is a transaction, committed on the way out.
        async with pool.connection() as connection:
            cursor = await connection.execute(_INSERT, (org_id, body.name, body.code))
            row = await cursor.fetchone()
        return Branch.model_validate(row)


def create_app() -> FastAPI:
    payload: dict[str, Any] = json.loads(Path(os.environ[PAYLOAD_ENV]).read_bytes())
    database_url = os.environ.get(DATABASE_ENV)
    pool: Pool | None = None
    if database_url:
        size = int(os.environ[POOL_SIZE_ENV])
        pool = AsyncConnectionPool(
            database_url, min_size=size, max_size=size, kwargs={"row_factory": dict_row}, open=False
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if pool is None:
            yield
            return
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/v1/users", response_model=MemberPage)
    async def list_users() -> MemberPage:
        # Built per request, as Touchstone builds its page from ORM rows per request.
        return MemberPage.model_validate(payload)

    if pool is not None:
        _add_insert(app, pool, uuid.UUID(os.environ[ORG_ENV]))
    return app


def main() -> None:
    """Serve with the uvicorn options of `touchstone serve` (core.http_server), its HTTP protocol
    with the request head limit included."""
    uvicorn.run(
        "bench.baseline_app:create_app",
        factory=True,
        host=os.environ["HOST"],
        port=int(os.environ["PORT"]),
        workers=1,
        **uvicorn_options(),
    )


if __name__ == "__main__":
    main()
