"""The module's GET routes on the one-round-trip read path (`core.reads`): what each answers,
to whom, and what it hides, as it was on the ORM path."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from tests.appraisal.conftest import API, CHAIN, RING, Bank, complete_purity, make_bank
from tests.appraisal.test_api_appraisals import jpeg
from tests.conftest import Tenant, add_member, assert_problem
from touchstone.appraisal.purity import service as purity_tests
from touchstone.appraisal.purity.pipeline import Karat
from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.deps import dependency_calls
from touchstone.core.permissions import Role
from touchstone.core.storage import get_storage
from touchstone.main import create_app

READS = {
    "/appraisal-settings": "appraisals:read",
    "/appraisal-settings/reference-needles": "appraisals:read",
    "/devices": "devices:write",
    "/gold-rates": "appraisals:read",
    "/customers": "customers:read",
    "/customers/{customer_id}": "customers:read",
    "/appraisals": "appraisals:read",
    "/appraisals/{appraisal_id}": "appraisals:read",
    "/appraisals/{appraisal_id}/evidence": "appraisals:read",
    "/purity-sessions/{test_id}": "appraisals:read",
    "/appraisals/{appraisal_id}/audit-chain": "appraisals:read",
    "/appraisals/{appraisal_id}/audit-chain/verify": "appraisals:read",
    "/appraisals/{appraisal_id}/certificate": "appraisals:read",
}


def test_each_read_has_one_dependency_its_tenant_read(settings: Settings) -> None:
    """No ORM session and nothing else to resolve per request: the `TenantRead`, for the
    permission the route always required, besides the models its query string is read as
    (`core.query_params`)."""
    found = {}
    for route in iter_route_contexts(create_app(settings).routes):
        path = str(route.path_format).removeprefix(API)
        if isinstance(route.original_route, APIRoute) and "GET" in route.methods and path in READS:
            found[path] = [
                (call.__name__, getattr(call, "permission", None))
                for call in dependency_calls(route.dependant)
                if not hasattr(call, "query_model")
            ]
    expected = {
        path: [(f"read_{permission.replace(':', '_')}", permission)]
        for path, permission in READS.items()
    }
    assert found == expected


async def test_a_branch_bound_member_reads_only_its_branchs_appraisals(
    bank: Bank,
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    tenant_b: Tenant,
) -> None:
    appraisal_id = await bank.new_appraisal(RING)
    (item,) = await bank.items(appraisal_id)
    test_id = await complete_purity(
        bank, database, get_storage(settings), appraisal_id, item["id"], Karat.K22, jpeg()
    )
    url = f"{API}/appraisals/{appraisal_id}"
    _, other_manager = await add_member(client, bank.tenant, Role.BRANCH_MANAGER, bank.other_branch)
    other_bank = await make_bank(client, tenant_b)
    outsiders = (bank.other_appraiser.headers, other_manager, other_bank.admin)
    for headers in outsiders:
        for path in ("", "/evidence", "/audit-chain", "/audit-chain/verify", "/certificate"):
            response = await client.get(f"{url}{path}", headers=headers)
            assert_problem(response, 404, "appraisal_not_found")
            assert response.json()["detail"] == "Appraisal not found"
        assert_problem(
            await client.get(f"{API}/purity-sessions/{test_id}", headers=headers),
            404,
            "purity_test_not_found",
        )
        listed = await client.get(f"{API}/appraisals", headers=headers)
        assert listed.json()["total"] == 0
        assert appraisal_id not in listed.text

    # The branch's own staff and the org-wide admin read everything.
    for headers in (bank.appraiser.headers, bank.manager.headers, bank.admin):
        detail = await client.get(url, headers=headers)
        assert detail.status_code == 200, detail.text
        assert [i["id"] for i in detail.json()["items"]] == [item["id"]]
        assert detail.json()["items"][0]["karat"] == "22K"
        evidence = (await client.get(f"{url}/evidence", headers=headers)).json()
        assert [e["kind"] for e in evidence] == ["result"]
        assert evidence[0]["download_url"]
        assert evidence[0]["purity_test_id"] == test_id
        chain = (await client.get(f"{url}/audit-chain", headers=headers)).json()
        assert [event["seq"] for event in chain] == list(range(1, len(chain) + 1))
        verified = (await client.get(f"{url}/audit-chain/verify", headers=headers)).json()
        assert verified == {
            "valid": True,
            "events": len(chain),
            "first_broken_seq": None,
            "head_hash": chain[-1]["hash"],
        }
        test = await client.get(f"{API}/purity-sessions/{test_id}", headers=headers)
        assert test.json()["status"] == "completed"
        assert test.json()["resumable"] is False
        # Not issued yet: the certificate's own 404, not the appraisal's.
        assert_problem(
            await client.get(f"{url}/certificate", headers=headers), 404, "certificate_not_found"
        )
        listed = await client.get(f"{API}/appraisals", headers=headers)
        assert [a["id"] for a in listed.json()["items"]] == [appraisal_id]

    # Customers are the bank's, not a branch's: any branch reads them, another bank does not.
    customer_url = f"{API}/customers/{bank.customer_id}"
    seen = await client.get(customer_url, headers=bank.other_appraiser.headers)
    assert seen.status_code == 200
    assert seen.json()["phone_masked"] == "XXXXXX3210"
    for url in (customer_url, f"{API}/customers/{uuid.uuid4()}"):
        assert_problem(await client.get(url, headers=other_bank.admin), 404, "customer_not_found")
    assert (await client.get(f"{API}/customers", headers=other_bank.admin)).json()["total"] == 1


async def test_the_appraisal_list_filters_sorts_and_pages(
    bank: Bank, client: httpx.AsyncClient
) -> None:
    draft = await bank.new_appraisal()
    with_items = await bank.new_appraisal(RING, CHAIN)
    newest = await bank.new_appraisal(amount="150000.00")

    async def ids(**params: str | int) -> list[str]:
        response = await client.get(
            f"{API}/appraisals", params=params, headers=bank.appraiser.headers
        )
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["items"]]

    assert await ids() == [newest, with_items, draft]
    assert await ids(sort="created_at") == [draft, with_items, newest]
    assert await ids(sort="-updated_at") == [newest, with_items, draft]
    assert await ids(status="items_added") == [with_items]
    assert await ids(status="draft", sort="created_at") == [draft, newest]
    assert await ids(status="approved") == []
    assert await ids(limit=1, offset=1) == [with_items]
    past_the_end = await client.get(
        f"{API}/appraisals", params={"offset": 10}, headers=bank.appraiser.headers
    )
    assert past_the_end.json() == {"items": [], "total": 3, "limit": 20, "offset": 10}
    first = (
        await client.get(f"{API}/appraisals", params={"limit": 1}, headers=bank.appraiser.headers)
    ).json()
    assert first["total"] == 3
    assert first["items"][0]["requested_amount"] == "150000.00"
    for params in ({"status": "bogus"}, {"sort": "status"}, {"limit": 0}):
        assert_problem(
            await client.get(f"{API}/appraisals", params=params, headers=bank.appraiser.headers),
            422,
        )
    detail = (
        await client.get(f"{API}/appraisals/{with_items}", headers=bank.appraiser.headers)
    ).json()
    assert [(i["item_type"], i["gross_weight_g"], i["net_weight_g"]) for i in detail["items"]] == [
        ("ring", "10.000", "9.500"),
        ("chain", "20.250", "20.250"),
    ]
    assert detail["valuation"] is None
    assert detail["status"] == "items_added"


async def test_customer_search_filters_escape_and_refuse(
    bank: Bank, client: httpx.AsyncClient
) -> None:
    for name, phone in (("Ravi_Kumar", "+91 91234 56789"), ("Ravindra 100%", "9000011111")):
        created = await client.post(
            f"{API}/customers",
            json={
                "full_name": name,
                "phone": phone,
                "id_document_type": "pan",
                "id_number": "ABCDE1234F",
            },
            headers=bank.appraiser.headers,
        )
        assert created.status_code == 201, created.text

    async def names(**params: str) -> list[str]:
        response = await client.get(
            f"{API}/customers", params=params, headers=bank.appraiser.headers
        )
        assert response.status_code == 200, response.text
        return [c["full_name"] for c in response.json()["items"]]

    assert await names() == ["Lakshmi Iyer", "Ravi_Kumar", "Ravindra 100%"]
    assert await names(sort="-full_name") == ["Ravindra 100%", "Ravi_Kumar", "Lakshmi Iyer"]
    assert await names(sort="-created_at") == ["Ravindra 100%", "Ravi_Kumar", "Lakshmi Iyer"]
    assert await names(name="ravi") == ["Ravi_Kumar", "Ravindra 100%"]
    assert await names(name="_") == ["Ravi_Kumar"]  # a literal underscore, not "any one"
    assert await names(name="%") == ["Ravindra 100%"]
    assert await names(phone="6789") == ["Ravi_Kumar"]
    assert await names(phone="+91-91234-56789") == ["Ravi_Kumar"]  # the digits, hashed
    assert await names(phone="91234 56789") == []  # not the number stored
    assert await names(name="ravi", phone="1111") == ["Ravindra 100%"]
    found = (await client.get(f"{API}/customers", headers=bank.appraiser.headers)).json()
    assert set(found["items"][0]) == {
        "id",
        "full_name",
        "phone_masked",
        "id_document_type",
        "id_number_masked",
        "has_photo",
        "created_at",
    }
    assert "56789" not in str(found)
    assert_problem(
        await client.get(
            f"{API}/customers", params={"phone": "abc"}, headers=bank.appraiser.headers
        ),
        422,
        "invalid_input",
    )
    # Who may not read customers gets a 403 whatever it asks: on its first read, and once the
    # read path knows the caller (from a route it may read), when the plan sees it first.
    _, analyst = await add_member(client, bank.tenant, Role.ANALYST)
    for known in (False, True):
        if known:
            assert (await client.get(f"{API}/users", headers=analyst)).status_code == 200
        for params in ({}, {"phone": "abc"}):
            assert_problem(
                await client.get(f"{API}/customers", params=params, headers=analyst), 403
            )
        assert_problem(
            await client.get(f"{API}/customers/{bank.customer_id}", headers=analyst), 403
        )


@pytest.mark.parametrize("snapshot", [{"stage": "acid", "state": [1, 2]}, None])
async def test_a_purity_test_is_resumable_only_with_a_snapshot(
    bank: Bank, client: httpx.AsyncClient, database: Database, snapshot: dict[str, object] | None
) -> None:
    appraisal_id = await bank.new_appraisal(RING)
    (item,) = await bank.items(appraisal_id)
    created = await client.post(
        f"{API}/appraisals/{appraisal_id}/items/{item['id']}/purity-sessions",
        headers=bank.appraiser.headers,
    )
    test_id = uuid.UUID(created.json()["id"])
    url = f"{API}/purity-sessions/{test_id}"
    assert (await client.get(url, headers=bank.appraiser.headers)).json()["resumable"] is False
    principal = bank.appraiser.principal(bank.tenant.org_id)
    async with database.transaction(org_id=principal.org_id, user_id=principal.id) as session:
        await purity_tests.start(session, principal, test_id, "websocket")
    async with database.transaction(org_id=principal.org_id, user_id=principal.id) as session:
        counts = purity_tests.FrameCounts(10, 8, 2)
        await purity_tests.interrupt(session, principal, test_id, {"stage": "acid"}, counts)
        test = await purity_tests.get_test(session, principal, test_id, for_update=True)
        test.snapshot = snapshot  # None: JSON null through the ORM, no snapshot either
    read = (await client.get(url, headers=bank.appraiser.headers)).json()
    assert read["status"] == "interrupted"
    assert read["resumable"] is (snapshot is not None)
    assert (read["frames_received"], read["frames_dropped"], read["stage"]) == (10, 2, "acid")


async def test_settings_devices_and_gold_rates(bank: Bank, client: httpx.AsyncClient) -> None:
    settings = await client.get(f"{API}/appraisal-settings", headers=bank.appraiser.headers)
    assert settings.json()["detector_engine"] == "classical"
    assert settings.json()["require_registered_device"] is False
    defaults = settings.json()["lending_policy"]
    await client.patch(
        f"{API}/appraisal-settings",
        json={"require_registered_device": True, "lending_policy": {"max_coin_weight_g": "20"}},
        headers=bank.admin,
    )
    stored = (await client.get(f"{API}/appraisal-settings", headers=bank.appraiser.headers)).json()
    assert stored["require_registered_device"] is True
    assert stored["lending_policy"] == {**defaults, "max_coin_weight_g": "20"}

    for name in ("Counter 2", "Counter 1"):
        made = await client.post(
            f"{API}/devices",
            json={"name": name, "appraiser_id": bank.appraiser.id},
            headers=bank.admin,
        )
        assert made.status_code == 201, made.text
    devices = (await client.get(f"{API}/devices", headers=bank.admin)).json()
    assert [d["name"] for d in devices["items"]] == ["Counter 1", "Counter 2"]  # newest first
    by_name = await client.get(f"{API}/devices", params={"sort": "-name"}, headers=bank.admin)
    assert [d["name"] for d in by_name.json()["items"]] == ["Counter 2", "Counter 1"]
    assert devices["items"][0]["last_used_at"] is None
    for headers in (bank.appraiser.headers, bank.manager.headers):
        assert_problem(await client.get(f"{API}/devices", headers=headers), 403)

    await client.post(
        f"{API}/gold-rates", json={"karat": "22K", "rate_per_g": "6400.25"}, headers=bank.admin
    )
    rates = (await client.get(f"{API}/gold-rates", headers=bank.manager.headers)).json()
    assert [(r["karat"], r["rate_per_g"]) for r in rates["items"]] == [
        ("22K", "6400.25"),
        ("24K", "7000.00"),
    ]
    by_karat = await client.get(
        f"{API}/gold-rates", params={"sort": "-karat"}, headers=bank.manager.headers
    )
    assert [r["karat"] for r in by_karat.json()["items"]] == ["24K", "22K"]
    only = await client.get(f"{API}/gold-rates", params={"karat": "22K"}, headers=bank.admin)
    assert only.json()["total"] == 1
    assert_problem(
        await client.get(f"{API}/gold-rates", params={"karat": "21K"}, headers=bank.admin), 422
    )
