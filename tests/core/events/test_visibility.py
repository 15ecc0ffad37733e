"""Live events reach only members allowed to read them: by module permission and branch."""

from __future__ import annotations

import ast
import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

import httpx

from tests.conftest import Tenant, add_member
from tests.core.events.conftest import LiveServer
from tests.core.events.test_events import collect, emit, subscribed
from touchstone.core.db import Database
from touchstone.core.permissions import TOPIC_PERMISSIONS, Role

SOURCE = Path(__file__).parents[3] / "src" / "touchstone"


def _published_modules() -> set[str]:
    """The module part of every topic literal the code publishes: the third argument of
    `publish(session, org, topic, …)`, or a `topic=` handed to a helper that publishes."""
    modules = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            topics = [k.value for k in node.keywords if k.arg == "topic"]
            if getattr(node.func, "id", "") == "publish":
                topics.append(node.args[2])
            for topic in topics:
                head = topic.values[0] if isinstance(topic, ast.JoinedStr) else topic
                if isinstance(head, ast.Constant):  # a variable is a helper passing one on
                    modules.add(str(head.value).partition(".")[0])
    return modules


def test_every_published_topic_names_who_may_read_it() -> None:
    modules = _published_modules()
    assert {"appraisal", "statements"} <= modules  # the scan still finds them
    assert modules <= TOPIC_PERMISSIONS.keys()


async def test_members_see_only_their_modules_and_their_branch(
    live_server: LiveServer, committed: Database, tenant: Tenant, live_client: httpx.AsyncClient
) -> None:
    branch = await live_client.post(
        "/api/v1/branches", headers=tenant.headers, json={"name": "North", "code": "N1"}
    )
    branch_id = branch.json()["id"]
    _, analyst = await add_member(live_client, tenant, Role.ANALYST)
    _, appraiser = await add_member(live_client, tenant, Role.APPRAISER, branch_id)

    def signed_in(headers: dict[str, str]) -> Tenant:
        return replace(tenant, token=headers["Authorization"].removeprefix("Bearer "))

    appraiser_stream = asyncio.create_task(collect(live_server, signed_in(appraiser), 2))
    await subscribed(live_server, 1)
    await emit(committed, tenant, "appraisal.completed", branch_id=str(uuid.uuid4()))
    await emit(committed, tenant, "appraisal.completed", branch_id=branch_id)
    await emit(committed, tenant, "statements.progress", percent=50)
    await emit(committed, tenant, "batch.done")
    live = await asyncio.wait_for(appraiser_stream, 10)
    assert [(e["event"], e["data"].get("branch_id")) for e in live] == [
        ("appraisal.completed", branch_id),
        ("batch.done", None),
    ]
    # The replay after Last-Event-ID applies the same rules.
    replayed = await collect(live_server, signed_in(analyst), 2, last_event_id=0)
    assert [e["event"] for e in replayed] == ["statements.progress", "batch.done"]
