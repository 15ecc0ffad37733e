"""Asking for a reset link: the same answer and the same work for any email, rate-limited,
and nothing readable left behind. (Delivery and the links: test_email_flows.py.)"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import Tenant, assert_problem
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.identity import tasks
from touchstone.main import create_app

API = "/api/v1"
URL = f"{API}/auth/password-reset"


async def _lookups(database: Database) -> list[dict[str, Any]]:
    """The queued cross-tenant lookups (the only thing a reset request writes)."""
    async with database.transaction() as session:
        rows = await session.execute(
            text("select args from procrastinate_jobs where task_name = :t order by id"),
            {"t": tasks.issue_password_resets.name},
        )
        return [row.args for row in rows]


@pytest.fixture
async def limited(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    strict = settings.model_copy(
        update={
            "password_reset_rate_limit_per_ip": "3/minute",
            "password_reset_rate_limit_per_email": "1/hour",
        }
    )
    transport = httpx.ASGITransport(app=create_app(strict, database=database))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_known_and_unknown_emails_get_the_same_answer_and_the_same_work(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    unknown = f"nobody-{uuid.uuid4().hex[:6]}@example.com"
    answers = []
    for email in (tenant_a.admin_email, unknown):
        before = len(await _lookups(database))
        answers.append(await client.post(URL, json={"email": email}))
        added = (await _lookups(database))[before:]
        assert len(added) == 1, "one sealed lookup per request, whatever the email"
        assert email not in json.dumps(added), "the email is sealed in the job's arguments"
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert answers[0].headers.keys() - {"x-request-id"} == answers[1].headers.keys() - {
        "x-request-id"
    }


async def test_bad_input_is_refused_alike_for_every_address(client: httpx.AsyncClient) -> None:
    for body in (
        {"email": "not an email"},
        {"email": "a@example.com", "org": ""},
        {"email": "a@example.com", "extra": 1},
    ):
        assert_problem(await client.post(URL, json=body), 422)
    confirm = f"{URL}/confirm"
    short = {"token": "x" * 43, "password": "short"}
    assert_problem(await client.post(confirm, json=short), 422)
    unknown = {"token": "x" * 43, "password": "long enough password"}
    assert_problem(await client.post(confirm, json=unknown), 400, "password_reset_invalid")


async def test_per_address_limit_answers_429(limited: httpx.AsyncClient) -> None:
    emails = [f"n{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(4)]
    answers = [await limited.post(URL, json={"email": email}) for email in emails]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1


async def test_per_email_limit_answers_alike_and_sends_nothing_more(
    limited: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    before = len(await _lookups(database))
    first = await limited.post(URL, json={"email": tenant_a.admin_email})
    again = await limited.post(URL, json={"email": tenant_a.admin_email.upper()})
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json() == again.json()
    assert len(await _lookups(database)) == before + 1
