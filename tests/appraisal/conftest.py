"""A bank to appraise in: two branches, their staff, a customer, a gold rate.

`make_bank` works on any client and tenant, so the same world serves the rolled-back ASGI
tests (`bank`) and the committed live-server ones (`live_bank`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, add_member
from touchstone.appraisal.purity import service as purity_tests
from touchstone.appraisal.purity.pipeline import (
    Karat,
    PurityResult,
    Stage,
    StageTiming,
    reading_method,
)
from touchstone.core.auth import Principal
from touchstone.core.db import Database
from touchstone.core.permissions import Role, permissions_for

API = "/api/v1"
RATE_24K = Decimal("7000.00")


@dataclass
class Staff:
    id: str
    headers: dict[str, str]
    branch_id: str
    role: Role

    def principal(self, org_id: uuid.UUID) -> Principal:
        return Principal(
            kind="user",
            id=uuid.UUID(self.id),
            org_id=org_id,
            role=self.role.value,
            branch_id=uuid.UUID(self.branch_id),
            permissions=permissions_for(self.role),
        )


@dataclass
class Bank:
    tenant: Tenant
    client: httpx.AsyncClient
    branch: str
    other_branch: str
    appraiser: Staff
    manager: Staff
    other_appraiser: Staff
    customer_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return self.tenant.headers

    async def new_appraisal(self, *items: dict[str, Any], amount: str | None = None) -> str:
        body: dict[str, Any] = {"customer_id": self.customer_id}
        if amount is not None:
            body["requested_amount"] = amount
        response = await self.client.post(
            f"{API}/appraisals", json=body, headers=self.appraiser.headers
        )
        assert response.status_code == 201, response.text
        appraisal_id: str = response.json()["id"]
        for item in items:
            added = await self.client.post(
                f"{API}/appraisals/{appraisal_id}/items", json=item, headers=self.appraiser.headers
            )
            assert added.status_code == 201, added.text
        return appraisal_id

    async def items(self, appraisal_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{API}/appraisals/{appraisal_id}", headers=self.appraiser.headers
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


RING = {"item_type": "ring", "count": 1, "gross_weight_g": "10.000", "deduction_g": "0.500"}
CHAIN = {"item_type": "chain", "count": 1, "gross_weight_g": "20.250", "deduction_g": "0"}


async def _branch(client: httpx.AsyncClient, tenant: Tenant, code: str) -> str:
    response = await client.post(
        f"{API}/branches", json={"name": f"Branch {code}", "code": code}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    branch_id: str = response.json()["id"]
    return branch_id


async def _staff(client: httpx.AsyncClient, tenant: Tenant, role: Role, branch: str) -> Staff:
    user_id, headers = await add_member(client, tenant, role, branch)
    return Staff(user_id, headers, branch, role)


async def make_bank(client: httpx.AsyncClient, tenant: Tenant) -> Bank:
    branch = await _branch(client, tenant, "MAIN")
    other = await _branch(client, tenant, "EAST")
    bank = Bank(
        tenant=tenant,
        client=client,
        branch=branch,
        other_branch=other,
        appraiser=await _staff(client, tenant, Role.APPRAISER, branch),
        manager=await _staff(client, tenant, Role.BRANCH_MANAGER, branch),
        other_appraiser=await _staff(client, tenant, Role.APPRAISER, other),
    )
    rate = await client.post(
        f"{API}/gold-rates",
        json={"karat": "24K", "rate_per_g": str(RATE_24K)},
        headers=tenant.headers,
    )
    assert rate.status_code == 201, rate.text
    customer = await client.post(
        f"{API}/customers",
        json={
            "full_name": "Lakshmi Iyer",
            "phone": "+91 98765 43210",
            "id_document_type": "aadhaar",
            "id_number": "1234 5678 9012",
        },
        headers=bank.appraiser.headers,
    )
    assert customer.status_code == 201, customer.text
    bank.customer_id = customer.json()["id"]
    return bank


@pytest.fixture
async def bank(client: httpx.AsyncClient, tenant_a: Tenant) -> Bank:
    return await make_bank(client, tenant_a)


@pytest.fixture
async def live_bank(live_client: httpx.AsyncClient, tenant: Tenant) -> Bank:
    """The same bank, committed: for live servers and other connections."""
    return await make_bank(live_client, tenant)


def fake_result(
    karat: Karat, evidence: Mapping[str, bytes], references: tuple[Karat, ...] = ()
) -> PurityResult:
    """What a finished pipeline hands over, for tests that are not about the live test."""
    needles = {k.value: kept for k, kept in zip(references, (0.1, 0.45, 0.8), strict=False)}
    return PurityResult(
        karat=karat,
        confidence=0.93,
        reason="steady reading",
        stage_timings={
            Stage.RUBBING: StageTiming(0.0, 2.5),
            Stage.ACID: StageTiming(2.5, 6.0),
            Stage.COMPLETED: StageTiming(6.0, 6.0),
        },
        milestones={"rubbing_confirmed": 2.5, "acid_applied": 3.7, "result": 6.0},
        detector_versions={"classical": "test"},
        evidence=dict(evidence),
        method=reading_method(references),
        reaction={**needles, "ornament": 0.47},
    )


async def complete_purity(
    bank: Bank,
    database: Database,
    storage: Any,
    appraisal_id: str,
    item_id: str,
    karat: Karat,
    evidence: bytes | Mapping[str, bytes],
    references: tuple[Karat, ...] = (),
) -> str:
    """Create a test over the API and finish it through the service, as a run would.

    `evidence`: the result frame, or frames by name (`EVIDENCE_KEYS`); `references`: the
    needles the pipeline compared with (the org's setting when the test was created).
    """
    frames = {"result": evidence} if isinstance(evidence, bytes) else dict(evidence)
    response = await bank.client.post(
        f"{API}/appraisals/{appraisal_id}/items/{item_id}/purity-sessions",
        headers=bank.appraiser.headers,
    )
    assert response.status_code == 201, response.text
    test_id = uuid.UUID(response.json()["id"])
    principal = bank.appraiser.principal(bank.tenant.org_id)
    stored = {
        name: await storage.put(
            bank.tenant.org_id, _once(jpeg), kind="purity-evidence", allowed_types={"image/jpeg"}
        )
        for name, jpeg in frames.items()
    }
    async with database.transaction(org_id=principal.org_id, user_id=principal.id) as session:
        await purity_tests.start(session, principal, test_id, "websocket")
    async with database.transaction(org_id=principal.org_id, user_id=principal.id) as session:
        await purity_tests.complete(
            session,
            principal,
            test_id,
            fake_result(karat, frames, references),
            stored,
            purity_tests.FrameCounts(90, 90, 0),
        )
    return str(test_id)


async def _once(data: bytes) -> Any:
    yield data
