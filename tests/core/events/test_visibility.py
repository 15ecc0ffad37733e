"""Live events reach only members allowed to read them: by module permission and branch."""

from __future__ import annotations

import ast
import asyncio
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Tenant, add_member
from tests.core.events.conftest import LiveServer
from tests.core.events.test_events import collect, emit, subscribed
from touchstone.core.auth import Principal
from touchstone.core.db import Database
from touchstone.core.events.hub import LiveEvent
from touchstone.core.events.router import visible_to
from touchstone.core.permissions import (
    BRANCH_SCOPED_TOPICS,
    TOPIC_PERMISSIONS,
    Role,
    permissions_for,
)

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


def test_every_event_of_a_branch_scoped_module_says_its_branch() -> None:
    """Each `publish` in a branch-scoped module's package hands over a `data` dict with a
    `branch_id` key (an event without one reaches no branch-bound member at all)."""
    calls = 0
    for module in BRANCH_SCOPED_TOPICS:
        for path in (SOURCE / module).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "publish"):
                    continue
                calls += 1
                data = next(k.value for k in node.keywords if k.arg == "data")
                assert isinstance(data, ast.Dict), f"{path.name}:{node.lineno}: data not a dict"
                keys = [k.value for k in data.keys if isinstance(k, ast.Constant)]
                assert "branch_id" in keys, f"{path.name}:{node.lineno} publishes no branch_id"
    assert calls >= 2  # the scan still finds them


def _member(branch_id: uuid.UUID | None, role: Role) -> Principal:
    return Principal(
        kind="user",
        id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        role=role.value,
        branch_id=branch_id,
        permissions=permissions_for(role),
    )


def _event(topic: str, **payload: Any) -> LiveEvent:
    return LiveEvent(1, "e", uuid.uuid4(), topic, "appraisal", "a", payload, "now")


def test_a_branch_scoped_event_without_its_branch_reaches_no_branch_bound_member() -> None:
    branch = uuid.uuid4()
    appraiser, admin = _member(branch, Role.APPRAISER), _member(branch, Role.ORG_ADMIN)
    assert not visible_to(appraiser, _event("appraisal.purity_progress"))
    assert visible_to(appraiser, _event("appraisal.purity_progress", branch_id=str(branch)))
    assert not visible_to(appraiser, _event("appraisal.completed", branch_id=str(uuid.uuid4())))
    assert visible_to(admin, _event("appraisal.purity_progress"))  # org-wide
    assert visible_to(appraiser, _event("batch.done"))  # not about a branch's objects


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
    live = await asyncio.wait_for(appraiser_stream, 60)
    assert [(e["event"], e["data"].get("branch_id")) for e in live] == [
        ("appraisal.completed", branch_id),
        ("batch.done", None),
    ]
    # The replay after Last-Event-ID applies the same rules.
    replayed = await collect(live_server, signed_in(analyst), 2, last_event_id=0)
    assert [e["event"] for e in replayed] == ["statements.progress", "batch.done"]
