"""Idempotency-Key: one effect per key, replays, mismatches, concurrency, expiry, secrecy."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel
from sqlalchemy import func, select, text

from tests.conftest import Tenant, assert_problem
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.deps import read_credential
from touchstone.core.idempotency import IdempotencyDep
from touchstone.core.idempotency_models import IdempotencyRecord
from touchstone.identity.models import Branch
from touchstone.main import create_app


def _branch(code: str) -> dict[str, str]:
    return {"name": f"Branch {code}", "code": code}


async def _branch_count(database: Database, tenant: Tenant, code: str) -> int:
    async with database.transaction(org_id=tenant.org_id) as session:
        return (
            await session.execute(
                select(func.count()).where(Branch.org_id == tenant.org_id, Branch.code == code)
            )
        ).scalar_one()


async def test_same_key_same_body_replays_the_first_response(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    headers = {**tenant_a.headers, "Idempotency-Key": "create-main-1"}
    first = await client.post("/api/v1/branches", json=_branch("MAIN"), headers=headers)
    again = await client.post("/api/v1/branches", json=_branch("MAIN"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _branch_count(database, tenant_a, "MAIN") == 1


async def test_same_key_different_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    headers = {**tenant_a.headers, "Idempotency-Key": "k-1"}
    assert (
        await client.post("/api/v1/branches", json=_branch("A1"), headers=headers)
    ).status_code == 201
    other = await client.post("/api/v1/branches", json=_branch("B1"), headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")
    assert await _branch_count(database, tenant_a, "B1") == 0


async def test_without_a_key_requests_simply_run(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    first = await client.post("/api/v1/branches", json=_branch("N1"), headers=tenant_a.headers)
    twin = await client.post("/api/v1/branches", json=_branch("N1"), headers=tenant_a.headers)
    assert first.status_code == 201
    assert_problem(twin, 409, "conflict")  # the unique code, not idempotency


async def test_keys_belong_to_their_principal_and_org(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    for tenant in (tenant_a, tenant_b):
        response = await client.post(
            "/api/v1/branches",
            json=_branch("SHARED"),
            headers={**tenant.headers, "Idempotency-Key": "same"},
        )
        assert response.status_code == 201
        assert "idempotent-replayed" not in response.headers


async def test_malformed_keys_are_refused(client: httpx.AsyncClient, tenant_a: Tenant) -> None:
    for key in ("", "x" * 256, "has space", "tab\there"):
        response = await client.post(
            "/api/v1/branches",
            json=_branch("BAD"),
            headers={**tenant_a.headers, "Idempotency-Key": key},
        )
        assert response.status_code == 422, key


async def test_twenty_parallel_identical_requests_make_one_effect(
    live_client: httpx.AsyncClient, tenant: Tenant, committed: Database
) -> None:
    code = f"P{uuid.uuid4().hex[:6]}"
    headers = {**tenant.headers, "Idempotency-Key": f"parallel-{code}"}
    responses = await asyncio.gather(
        *(
            live_client.post("/api/v1/branches", json=_branch(code), headers=headers)
            for _ in range(20)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1
    assert await _branch_count(committed, tenant, code) == 1
    late = await live_client.post("/api/v1/branches", json=_branch(code), headers=headers)
    assert late.status_code == 201
    assert late.headers["idempotent-replayed"] == "true"


async def test_expired_keys_run_again_and_are_purged(
    settings: Settings, database: Database, tenant_a: Tenant
) -> None:
    app = create_app(settings.model_copy(update={"idempotency_ttl_seconds": 0}), database=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        headers = {**tenant_a.headers, "Idempotency-Key": "short-lived"}
        first = await client.post("/api/v1/branches", json=_branch("E1"), headers=headers)
        second = await client.post("/api/v1/branches", json=_branch("E1"), headers=headers)
    assert first.status_code == 201
    assert_problem(second, 409, "conflict")  # it ran again: the code is taken by the first
    async with database.transaction(org_id=tenant_a.org_id) as session:
        await session.execute(text("select purge_expired_idempotency_keys()"))
        left = await session.execute(select(func.count()).select_from(IdempotencyRecord))
        assert left.scalar_one() == 0


async def test_stored_responses_are_sealed_but_replay_the_one_time_secret(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    headers = {**tenant_a.headers, "Idempotency-Key": "new-key-1"}
    body = {"name": "ci", "scopes": ["users:read"]}
    first = await client.post("/api/v1/api-keys", json=body, headers=headers)
    again = await client.post("/api/v1/api-keys", json=body, headers=headers)
    secret = first.json()["key"]
    assert again.json()["key"] == secret
    async with database.transaction(org_id=tenant_a.org_id) as session:
        stored = (await session.execute(select(IdempotencyRecord.sealed_body))).scalar_one()
    assert secret not in stored
    assert secret.split("_", 2)[2] not in stored  # tsk_<prefix>_<secret>


async def test_uploads_are_fingerprinted_by_their_form_fields_and_files(
    settings: Settings, database: Database, tenant_a: Tenant
) -> None:
    """Multipart bodies are fingerprinted from the parsed form (fields, file names and
    contents), since FastAPI has already consumed the raw stream."""
    app = create_app(settings, database=database)
    effects: list[str] = []

    async def upload(
        idempotency: IdempotencyDep,
        title: Annotated[str, Form()],
        file: Annotated[UploadFile, File()],
    ) -> Received:
        effects.append(title)
        return idempotency.remember(Received(title=title, size=file.size or 0))

    app.include_router(_router(upload), prefix="/api/v1", dependencies=[Depends(read_credential)])
    transport = httpx.ASGITransport(app=app)
    headers = {**tenant_a.headers, "Idempotency-Key": "upload-1"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

        async def send(title: str, content: bytes) -> httpx.Response:
            return await client.post(
                "/api/v1/uploads",
                headers=headers,
                data={"title": title},
                files={"file": ("scan.pdf", content, "application/pdf")},
            )

        first = await send("statement", b"%PDF-1.7 one")
        replay = await send("statement", b"%PDF-1.7 one")
        other_file = await send("statement", b"%PDF-1.7 two")  # same size, other bytes
        other_title = await send("contract", b"%PDF-1.7 one")
    assert first.status_code == replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json() == {"title": "statement", "size": 12}
    assert_problem(other_file, 422, "idempotency_key_reused")
    assert_problem(other_title, 422, "idempotency_key_reused")
    assert effects == ["statement"]


class Received(BaseModel):
    title: str
    size: int


def _router(endpoint: Callable[..., Awaitable[Received]]) -> APIRouter:
    router = APIRouter()
    router.add_api_route(
        "/uploads", endpoint, methods=["POST"], status_code=201, response_model=Received
    )
    return router
