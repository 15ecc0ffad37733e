"""The purity-test WebSocket authenticates itself (browsers cannot send headers on it), so
its tenant, branch and permission checks are swept here over a real socket.

Another bank's token is refused in tests/appraisal/purity/live/test_api.py, and the events socket's
refusals in tests/core/events/test_events.py; this adds another branch and a viewer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.appraisal.conftest import make_bank
from tests.appraisal.purity.live.test_api import new_test
from tests.conftest import Tenant, add_member
from tests.core.events.conftest import LiveServer, serve
from tests.security.world import API
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.permissions import Role


@pytest.fixture
async def server(settings: Settings, committed: Database) -> AsyncIterator[LiveServer]:
    async with serve(settings, committed) as running:
        yield running


def _url(server: LiveServer, test_id: str, headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    return f"{server.ws_url}{API}/purity-sessions/{test_id}/ws?access_token={token}"


async def test_the_purity_socket_of_another_branch_is_not_found_and_a_viewer_is_refused(
    server: LiveServer, live_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    bank = await make_bank(live_client, tenant)
    _, _, test_id = await new_test(bank)
    async with connect(_url(server, test_id, bank.other_appraiser.headers)) as socket:
        assert json.loads(await socket.recv())["code"] == "purity_test_not_found"
    _, viewer = await add_member(live_client, tenant, Role.VIEWER, bank.branch)
    with pytest.raises(InvalidStatus, match="403"):
        async with connect(_url(server, test_id, viewer)):
            pass
    detail = await live_client.get(f"{API}/purity-sessions/{test_id}", headers=bank.admin)
    assert detail.json()["status"] == "created"
