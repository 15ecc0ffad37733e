"""Reference needles: the org setting, what a purity test takes from it, and the pipeline a
live run builds with it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.appraisal.conftest import API, RING, Bank
from tests.conftest import Tenant, assert_problem
from touchstone.appraisal.purity.live.run import PurityRun
from touchstone.appraisal.purity.pipeline import Karat
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.storage import get_storage

URL = f"{API}/appraisal-settings/reference-needles"


async def needles(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(URL, headers=headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def new_purity_test(bank: Bank) -> dict[str, Any]:
    appraisal_id = await bank.new_appraisal(RING)
    item_id = (await bank.items(appraisal_id))[0]["id"]
    response = await bank.client.post(
        f"{API}/appraisals/{appraisal_id}/items/{item_id}/purity-sessions",
        headers=bank.appraiser.headers,
    )
    assert response.status_code == 201, response.text
    test: dict[str, Any] = response.json()
    return test


async def test_an_admin_sets_the_needles_and_new_tests_take_them(
    bank: Bank, client: httpx.AsyncClient, tenant_b: Tenant
) -> None:
    assert await needles(client, bank.appraiser.headers) == {"karats": [], "method": "absolute"}
    before = await new_purity_test(bank)
    assert before["reference_karats"] == []

    response = await client.put(URL, json={"karats": ["18K", "22K"]}, headers=bank.admin)
    assert response.status_code == 200, response.text
    assert response.json() == {"karats": ["18K", "22K"], "method": "reference needles 18K, 22K"}
    assert (await needles(client, bank.appraiser.headers))["karats"] == ["18K", "22K"]
    settings = await client.get(f"{API}/appraisal-settings", headers=bank.appraiser.headers)
    assert settings.json()["reference_karats"] == ["18K", "22K"]

    after = await new_purity_test(bank)
    assert after["reference_karats"] == ["18K", "22K"]
    # A test created before keeps what the stone held when it was created.
    earlier = await client.get(
        f"{API}/purity-sessions/{before['id']}", headers=bank.appraiser.headers
    )
    assert earlier.json()["reference_karats"] == []

    # Another bank's setting is its own.
    assert (await needles(client, tenant_b.headers))["karats"] == []

    audit = await client.get(
        f"{API}/audit-events",
        params={"action": "appraisal_settings.reference_needles_set"},
        headers=bank.admin,
    )
    changes = [e["changes"] for e in audit.json()["items"]]
    assert changes == [{"before": [], "after": ["18K", "22K"]}]

    cleared = await client.put(URL, json={"karats": []}, headers=bank.admin)
    assert cleared.json() == {"karats": [], "method": "absolute"}


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"karats": ["22K", "18K"]}, "ascending"),
        ({"karats": ["18K", "18K"]}, "twice"),
        ({"karats": ["21K"]}, "karats"),
        ({"karats": ["inconclusive"]}, "karats"),
        ({"karats": ["18K", "22K", "24K", "24K"]}, "karats"),
        ({"karats": "18K"}, "karats"),
        ({}, "karats"),
        ({"karats": ["18K"], "extra": True}, "extra"),
    ],
)
async def test_bad_needles_are_refused_and_change_nothing(
    bank: Bank, client: httpx.AsyncClient, body: dict[str, Any], complaint: str
) -> None:
    assert (await client.put(URL, json={"karats": ["24K"]}, headers=bank.admin)).status_code == 200
    problem = assert_problem(await client.put(URL, json=body, headers=bank.admin), 422)
    assert complaint in str(problem)
    assert (await needles(client, bank.admin))["karats"] == ["24K"]


async def test_only_who_configures_the_bank_sets_needles(
    bank: Bank, client: httpx.AsyncClient
) -> None:
    for staff in (bank.appraiser, bank.manager):
        refused = await client.put(URL, json={"karats": ["22K"]}, headers=staff.headers)
        assert_problem(refused, 403)
    assert_problem(await client.get(URL), 401)
    assert (await needles(client, bank.admin))["karats"] == []


async def test_a_live_run_reads_against_the_tests_needles(
    live_bank: Bank, committed: Database, settings: Settings
) -> None:
    """The pipeline a run builds compares with the needles the test was created with."""
    client = live_bank.client
    assert (
        await client.put(URL, json={"karats": ["18K", "22K", "24K"]}, headers=live_bank.admin)
    ).status_code == 200
    test = await new_purity_test(live_bank)
    principal = live_bank.appraiser.principal(live_bank.tenant.org_id)

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError(f"nothing is sent before a frame: {message}")

    run = await PurityRun.open(
        committed,
        get_storage(settings),
        settings,
        principal,
        uuid.UUID(test["id"]),
        "websocket",
        send,
    )
    try:
        assert run.pipeline.references == (Karat.K18, Karat.K22, Karat.K24)
        assert run.pipeline.method == "reference needles 18K, 22K, 24K"
    finally:
        await run.close()
    stopped = await client.get(
        f"{API}/purity-sessions/{test['id']}", headers=live_bank.appraiser.headers
    )
    assert stopped.json()["status"] == "interrupted"
    assert stopped.json()["reference_karats"] == ["18K", "22K", "24K"]
