"""The comparison point: a bare FastAPI endpoint serving a captured copy of the user page.

No auth, no middleware, no database. What is left is uvicorn, FastAPI routing and the
serialisation of a declared Pydantic response model that mirrors `Page[MemberOut]`, so the
difference to Touchstone is exactly what a real request adds. The page is read from the file
named by BENCH_PAYLOAD, written by `bench.http_list` from a real response.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from touchstone.core.http_server import uvicorn_options

PAYLOAD_ENV = "BENCH_PAYLOAD"


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


def create_app() -> FastAPI:
    payload: dict[str, Any] = json.loads(Path(os.environ[PAYLOAD_ENV]).read_bytes())
    app = FastAPI()

    @app.get("/api/v1/users", response_model=MemberPage)
    async def list_users() -> MemberPage:
        # Built per request, as Touchstone builds its page from ORM rows per request.
        return MemberPage.model_validate(payload)

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
