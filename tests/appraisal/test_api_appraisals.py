"""The appraisal records over HTTP: life cycle, tenancy, bad input, maker-checker, overrides."""

from __future__ import annotations

import typing

import cv2
import httpx
import numpy as np

from tests.appraisal.conftest import API, CHAIN, RING, Bank, complete_purity, make_bank
from tests.conftest import Tenant, assert_problem
from touchstone.appraisal.purity.pipeline import Karat
from touchstone.appraisal.schemas import ItemType
from touchstone.appraisal.valuation import ITEM_TYPES
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.storage import get_storage


def jpeg(colour: tuple[int, int, int] = (40, 160, 210)) -> bytes:
    frame = np.full((48, 64, 3), colour, np.uint8)
    return bytes(cv2.imencode(".jpg", frame)[1].tobytes())


async def appraisal_tested(
    bank: Bank, database: Database, settings: Settings, *karats: Karat
) -> str:
    """An appraisal with one ring per karat, each purity-tested."""
    appraisal_id = await bank.new_appraisal(*([RING] * len(karats)))
    storage = get_storage(settings)
    for item, karat in zip(await bank.items(appraisal_id), karats, strict=True):
        await complete_purity(bank, database, storage, appraisal_id, item["id"], karat, jpeg())
    return appraisal_id


def test_item_types_match_the_valuation_rules() -> None:
    assert set(typing.get_args(ItemType)) == set(ITEM_TYPES)


async def test_life_cycle_from_draft_to_approved(
    bank: Bank, client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    appraisal_id = await bank.new_appraisal()
    url = f"{API}/appraisals/{appraisal_id}"
    assert (await client.get(url, headers=bank.appraiser.headers)).json()["status"] == "draft"
    await client.post(f"{url}/items", json=RING, headers=bank.appraiser.headers)
    detail = (await client.get(url, headers=bank.appraiser.headers)).json()
    assert detail["status"] == "items_added"
    assert detail["items"][0]["net_weight_g"] == "9.500"

    storage = get_storage(settings)
    await complete_purity(
        bank, database, storage, appraisal_id, detail["items"][0]["id"], Karat.K22, jpeg()
    )
    assert (await client.get(url, headers=bank.appraiser.headers)).json()["status"] == (
        "purity_completed"
    )

    valued = await client.post(
        f"{url}/valuation", json={"requested_amount": "40000"}, headers=bank.appraiser.headers
    )
    assert valued.status_code == 200, valued.text
    valuation = valued.json()["valuation"]
    # 9.5 g x (7000 x 22/24 = 6416.67) = 60958.37
    assert valuation["total_value"] == "60958.37"
    assert valuation["all_checks_passed"] is True
    assert {check["rule"] for check in valuation["checks"]} >= {"ltv_tier", "karat_accepted"}

    approved = await client.post(
        f"{url}/approve",
        json={"comment": "Weights and purity checked"},
        headers=bank.manager.headers,
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] == bank.manager.id

    chain = await client.get(f"{url}/audit-chain", headers=bank.manager.headers)
    actions = [event["action"] for event in chain.json()]
    assert actions[0] == "appraisal.created"
    assert actions[-1] == "appraisal.approved"
    assert "appraisal.purity_test_completed" in actions
    verified = await client.get(f"{url}/audit-chain/verify", headers=bank.manager.headers)
    assert verified.json() == {
        "valid": True,
        "events": len(actions),
        "first_broken_seq": None,
        "head_hash": chain.json()[-1]["hash"],
    }


async def test_illegal_transitions_are_refused_and_change_nothing(
    bank: Bank, client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    appraisal_id = await bank.new_appraisal()
    url = f"{API}/appraisals/{appraisal_id}"
    assert_problem(
        await client.post(f"{url}/valuation", json={}, headers=bank.appraiser.headers),
        409,
        "illegal_status_transition",
    )
    assert_problem(
        await client.post(f"{url}/approve", json={"comment": "ok"}, headers=bank.manager.headers),
        409,
        "illegal_status_transition",
    )
    # Purity needs items first.
    await client.post(f"{url}/items", json=RING, headers=bank.appraiser.headers)
    approved_id = await appraisal_tested(bank, database, settings, Karat.K22)
    await client.post(
        f"{API}/appraisals/{approved_id}/valuation", json={}, headers=bank.appraiser.headers
    )
    decided = await client.post(
        f"{API}/appraisals/{approved_id}/reject",
        json={"comment": "no"},
        headers=bank.manager.headers,
    )
    assert decided.json()["status"] == "rejected"
    for path, body in (
        ("approve", {"comment": "changed my mind"}),
        ("valuation", {}),
        ("items", RING),
    ):
        assert_problem(
            await client.post(
                f"{API}/appraisals/{approved_id}/{path}",
                json=body,
                headers=bank.manager.headers if path == "approve" else bank.appraiser.headers,
            ),
            409,
            "illegal_status_transition",
        )
    detail = (
        await client.get(f"{API}/appraisals/{approved_id}", headers=bank.manager.headers)
    ).json()
    assert detail["status"] == "rejected"
    assert len(detail["items"]) == 1


async def test_items_are_closed_once_purity_testing_starts(
    bank: Bank, client: httpx.AsyncClient
) -> None:
    appraisal_id = await bank.new_appraisal(RING)
    item_id = (await bank.items(appraisal_id))[0]["id"]
    created = await client.post(
        f"{API}/appraisals/{appraisal_id}/items/{item_id}/purity-sessions",
        headers=bank.appraiser.headers,
    )
    assert created.status_code == 201
    assert created.json()["websocket_url"].endswith("/ws")
    assert_problem(
        await client.post(
            f"{API}/appraisals/{appraisal_id}/items", json=CHAIN, headers=bank.appraiser.headers
        ),
        409,
        "illegal_status_transition",
    )


IMPOSSIBLE_ITEMS = [
    {**RING, "gross_weight_g": "-1"},
    {**RING, "gross_weight_g": "0"},
    {**RING, "deduction_g": "-0.1"},
    {**RING, "deduction_g": "10.000"},
    {**RING, "gross_weight_g": "1e9"},
    {**RING, "gross_weight_g": "1.0001"},
    {**RING, "gross_weight_g": "NaN"},
    {**RING, "count": 0},
    {**RING, "item_type": "spaceship"},
    {**RING, "org_id": "00000000-0000-0000-0000-000000000000"},
]


async def test_impossible_items_get_422_and_change_nothing(
    bank: Bank, client: httpx.AsyncClient
) -> None:
    appraisal_id = await bank.new_appraisal()
    for item in IMPOSSIBLE_ITEMS:
        response = await client.post(
            f"{API}/appraisals/{appraisal_id}/items", json=item, headers=bank.appraiser.headers
        )
        assert_problem(response, 422, "invalid_input")
    detail = await client.get(f"{API}/appraisals/{appraisal_id}", headers=bank.appraiser.headers)
    assert detail.json()["status"] == "draft"
    assert detail.json()["items"] == []


async def test_another_branch_or_bank_sees_404(
    bank: Bank, client: httpx.AsyncClient, database: Database, settings: Settings, tenant_b: Tenant
) -> None:
    appraisal_id = await bank.new_appraisal(RING)
    item_id = (await bank.items(appraisal_id))[0]["id"]
    other_bank = await make_bank(client, tenant_b)
    url = f"{API}/appraisals/{appraisal_id}"
    for headers in (bank.other_appraiser.headers, other_bank.appraiser.headers, other_bank.admin):
        assert_problem(await client.get(url, headers=headers), 404, "appraisal_not_found")
        assert_problem(
            await client.post(f"{url}/items", json=RING, headers=headers),
            404,
            "appraisal_not_found",
        )
        assert_problem(
            await client.post(f"{url}/items/{item_id}/purity-sessions", headers=headers), 404
        )
        assert_problem(await client.get(f"{url}/audit-chain/verify", headers=headers), 404)
    listed = await client.get(f"{API}/appraisals", headers=bank.other_appraiser.headers)
    assert listed.json()["total"] == 0
    # The org admin sees every branch.
    assert (await client.get(url, headers=bank.admin)).status_code == 200
    # Another bank's customer cannot be appraised here.
    response = await client.post(
        f"{API}/appraisals",
        json={"customer_id": other_bank.customer_id},
        headers=bank.appraiser.headers,
    )
    assert_problem(response, 422)


async def test_maker_checker(
    bank: Bank, client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    # The org admin appraises (in a branch) and may not approve their own appraisal.
    response = await client.post(
        f"{API}/appraisals",
        json={"customer_id": bank.customer_id, "branch_id": bank.branch},
        headers=bank.admin,
    )
    assert response.status_code == 201, response.text
    own = response.json()["id"]
    await client.post(f"{API}/appraisals/{own}/items", json=RING, headers=bank.admin)
    assert_problem(
        await client.post(
            f"{API}/appraisals/{own}/approve", json={"comment": "mine"}, headers=bank.admin
        ),
        403,
        "maker_checker_violation",
    )
    appraisal_id = await appraisal_tested(bank, database, settings, Karat.K22)
    url = f"{API}/appraisals/{appraisal_id}"
    await client.post(f"{url}/valuation", json={}, headers=bank.appraiser.headers)
    # The appraiser lacks the permission; nobody decides on their own work.
    assert_problem(
        await client.post(f"{url}/approve", json={"comment": "ok"}, headers=bank.appraiser.headers),
        403,
    )
    assert_problem(
        await client.post(f"{url}/approve", json={"comment": ""}, headers=bank.manager.headers), 422
    )
    approved = await client.post(
        f"{url}/approve", json={"comment": "ok"}, headers=bank.manager.headers
    )
    assert approved.status_code == 200


async def test_purity_override_needs_a_test_and_a_reason_and_is_audited(
    bank: Bank, client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    untested = await bank.new_appraisal(RING)
    item_id = (await bank.items(untested))[0]["id"]
    assert_problem(
        await client.post(
            f"{API}/appraisals/{untested}/items/{item_id}/purity-override",
            json={"karat": "22K", "reason": "I can tell by looking"},
            headers=bank.appraiser.headers,
        ),
        409,
        "no_purity_test",
    )
    appraisal_id = await appraisal_tested(bank, database, settings, Karat.K18)
    item_id = (await bank.items(appraisal_id))[0]["id"]
    url = f"{API}/appraisals/{appraisal_id}/items/{item_id}/purity-override"
    for body in (
        {"karat": "22K"},
        {"karat": "22K", "reason": ""},
        {"karat": "21K", "reason": "hallmark"},
    ):
        assert_problem(await client.post(url, json=body, headers=bank.appraiser.headers), 422)
    response = await client.post(
        url,
        json={"karat": "22K", "reason": "BIS hallmark 916 on the clasp"},
        headers=bank.appraiser.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["previous_karat"] == "18K"
    assert (await bank.items(appraisal_id))[0]["karat"] == "22K"
    audit = await client.get(
        f"{API}/audit-events", params={"action": "appraisal.purity_overridden"}, headers=bank.admin
    )
    events = [e for e in audit.json()["items"] if e["action"] == "appraisal.purity_overridden"]
    assert events
    assert events[0]["changes"]["reason"] == "BIS hallmark 916 on the clasp"
    chain = await client.get(
        f"{API}/appraisals/{appraisal_id}/audit-chain", headers=bank.appraiser.headers
    )
    assert chain.json()[-1]["data"]["from"] == "18K"


async def test_customers_are_masked_and_searchable(bank: Bank, client: httpx.AsyncClient) -> None:
    found = await client.get(
        f"{API}/customers", params={"name": "laksh"}, headers=bank.appraiser.headers
    )
    customer = found.json()["items"][0]
    assert customer["phone_masked"] == "XXXXXX3210"
    assert customer["id_number_masked"] == "XXXXXXXX9012"
    assert "98765" not in found.text
    assert "5678" not in found.text
    by_phone = await client.get(
        f"{API}/customers", params={"phone": "+919876543210"}, headers=bank.appraiser.headers
    )
    assert [c["id"] for c in by_phone.json()["items"]] == [bank.customer_id]
    by_last_digits = await client.get(
        f"{API}/customers", params={"phone": "3210"}, headers=bank.appraiser.headers
    )
    assert by_last_digits.json()["total"] == 1
    nobody = await client.get(
        f"{API}/customers", params={"phone": "9876543211"}, headers=bank.appraiser.headers
    )
    assert nobody.json()["total"] == 0
    assert_problem(
        await client.post(
            f"{API}/customers",
            json={
                "full_name": "X",
                "phone": "12",
                "id_document_type": "pan",
                "id_number": "ABCDE1234F",
            },
            headers=bank.appraiser.headers,
        ),
        422,
    )
    photo = await client.put(
        f"{API}/customers/{bank.customer_id}/photo",
        files={"photo": ("face.jpg", jpeg(), "image/jpeg")},
        headers=bank.appraiser.headers,
    )
    assert photo.status_code == 200, photo.text
    assert photo.json()["has_photo"] is True
    not_an_image = await client.put(
        f"{API}/customers/{bank.customer_id}/photo",
        files={"photo": ("face.jpg", b"%PDF-1.4 not a photo", "image/jpeg")},
        headers=bank.appraiser.headers,
    )
    assert_problem(not_an_image, 415)
    camera_photo = np.random.default_rng(1).integers(0, 255, (1200, 1600, 3), np.uint8)
    large = bytes(cv2.imencode(".jpg", camera_photo, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])
    assert len(large) > 2 * 1024 * 1024  # over MAX_BODY_BYTES, under the photo limit
    accepted = await client.put(
        f"{API}/customers/{bank.customer_id}/photo",
        files={"photo": ("face.jpg", large, "image/jpeg")},
        headers=bank.appraiser.headers,
    )
    assert accepted.status_code == 200, accepted.text


async def test_registered_device_rule(bank: Bank, client: httpx.AsyncClient) -> None:
    settings = await client.patch(
        f"{API}/appraisal-settings", json={"require_registered_device": True}, headers=bank.admin
    )
    assert settings.status_code == 200, settings.text
    appraisal_id = await bank.new_appraisal(RING)
    item_id = (await bank.items(appraisal_id))[0]["id"]
    url = f"{API}/appraisals/{appraisal_id}/items/{item_id}/purity-sessions"
    assert_problem(
        await client.post(url, headers=bank.appraiser.headers), 403, "device_not_registered"
    )
    device = await client.post(
        f"{API}/devices",
        json={"name": "Counter 1 phone", "appraiser_id": bank.appraiser.id},
        headers=bank.admin,
    )
    assert device.status_code == 201, device.text
    device_id = device.json()["id"]
    foreign = await client.post(
        f"{API}/devices",
        json={"name": "East phone", "appraiser_id": bank.other_appraiser.id},
        headers=bank.admin,
    )
    for header in (foreign.json()["id"], "not-a-uuid"):
        assert_problem(
            await client.post(url, headers={**bank.appraiser.headers, "X-Device-Id": header}),
            403,
            "device_not_registered",
        )
    created = await client.post(url, headers={**bank.appraiser.headers, "X-Device-Id": device_id})
    assert created.status_code == 201, created.text
    assert created.json()["device_id"] == device_id
    await client.post(f"{API}/devices/{device_id}/deactivate", headers=bank.admin)
    assert_problem(
        await client.post(url, headers={**bank.appraiser.headers, "X-Device-Id": device_id}),
        403,
        "device_not_registered",
    )


async def test_gold_rates_history_and_lending_policy(bank: Bank, client: httpx.AsyncClient) -> None:
    await client.post(
        f"{API}/gold-rates", json={"karat": "24K", "rate_per_g": "7100.50"}, headers=bank.admin
    )
    history = await client.get(
        f"{API}/gold-rates", params={"karat": "24K"}, headers=bank.appraiser.headers
    )
    assert [r["rate_per_g"] for r in history.json()["items"]] == ["7100.50", "7000.00"]
    assert_problem(
        await client.post(
            f"{API}/gold-rates",
            json={"karat": "24K", "rate_per_g": "7000"},
            headers=bank.appraiser.headers,
        ),
        403,
    )
    assert_problem(
        await client.post(
            f"{API}/gold-rates", json={"karat": "24K", "rate_per_g": "-5"}, headers=bank.admin
        ),
        422,
    )
    policy = await client.get(f"{API}/appraisal-settings", headers=bank.appraiser.headers)
    assert policy.json()["lending_policy"]["max_coin_weight_g"] == "50"
    bad = await client.patch(
        f"{API}/appraisal-settings",
        json={"lending_policy": {"max_coin_weight_g": -1}},
        headers=bank.admin,
    )
    assert_problem(bad, 422, "invalid_lending_policy")
    good = await client.patch(
        f"{API}/appraisal-settings",
        json={"lending_policy": {"max_coin_weight_g": "20"}},
        headers=bank.admin,
    )
    assert good.json()["lending_policy"]["max_coin_weight_g"] == "20"
