"""Two tenants in a state machine (hypothesis): objects of every kind are made by either
tenant; the owner reads, changes and deletes them with schema-valid bodies while the other
tenant tries every operation on them. The other tenant always gets 404, whatever state the
owner left the object in; the owner never gets a 5xx.

Hypothesis drives the machine in a worker thread; each step runs on the test's event loop,
where the per-test database lives. `make fuzz` runs more and longer sequences.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, rule, run_state_machine_as_test

from tests.conftest import Tenant
from tests.security.test_cross_tenant import SELF_SERVICE, openapi, with_ids
from tests.security.world import FACTORIES, PARAM, World, request_body
from touchstone.core.db import Database

RUNS = int(os.environ.get("FUZZ_EXAMPLES", "3"))
Made = tuple[int, dict[str, str]]
"""(owner's index, the path parameters its new object fills)."""


class TwoTenants(RuleBasedStateMachine):
    loop: ClassVar[asyncio.AbstractEventLoop]
    client: ClassVar[httpx.AsyncClient]
    database: ClassVar[Database]
    tenants: ClassVar[list[Tenant]]
    worlds: ClassVar[list[World]]
    operations: ClassVar[list[tuple[str, str, dict[str, Any]]]]
    document: ClassVar[dict[str, Any]]

    made = Bundle("made")

    def run(self, step: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(step, self.loop).result(timeout=120)

    @rule(target=made, owner=st.sampled_from([0, 1]), prefix=st.sampled_from(sorted(FACTORIES)))
    def make(self, owner: int, prefix: str) -> Made:
        shared = self.worlds[owner]  # one bank per tenant: its branch codes are fixed
        fresh = World(self.client, self.database, self.tenants[owner], bank=shared.bank)
        self.run(fresh.make(prefix))
        shared.bank = fresh.bank
        return owner, dict(fresh.ids)

    def _calls(self, made: Made) -> list[tuple[str, str, dict[str, Any]]]:
        _, ids = made
        return [
            (method, path.format(**ids), operation)
            for method, path, operation in self.operations
            if set(PARAM.findall(path)) <= set(ids) and path not in SELF_SERVICE
        ]

    @rule(made=made, data=st.data())
    def the_other_tenant_is_refused(self, made: Made, data: st.DataObject) -> None:
        calls = self._calls(made)
        if not calls:
            return
        method, url, operation = data.draw(st.sampled_from(calls))
        other = self.tenants[1 - made[0]]
        body = request_body(self.document, operation)
        response = self.run(self.client.request(method.upper(), url, headers=other.headers, **body))
        assert response.status_code == 404, (method, url, response.status_code, response.text)

    @rule(made=made, data=st.data())
    def the_owner_acts(self, made: Made, data: st.DataObject) -> None:
        calls = self._calls(made)
        if not calls:
            return
        method, url, operation = data.draw(st.sampled_from(calls))
        owner = self.tenants[made[0]]
        body = request_body(self.document, operation)
        response = self.run(self.client.request(method.upper(), url, headers=owner.headers, **body))
        assert response.status_code < 500, (method, url, response.text)


@pytest.mark.slow
async def test_two_tenants_in_a_state_machine(
    client: httpx.AsyncClient, tenant_a: Tenant, tenant_b: Tenant, database: Database
) -> None:
    document = await openapi(client)
    worlds = [World(client, database, tenant) for tenant in (tenant_a, tenant_b)]
    for world in worlds:
        await world.the_bank()
    TwoTenants.loop = asyncio.get_running_loop()
    TwoTenants.client, TwoTenants.database = client, database
    TwoTenants.tenants, TwoTenants.worlds = [tenant_a, tenant_b], worlds
    TwoTenants.document, TwoTenants.operations = document, with_ids(document)
    machine_settings = settings(
        max_examples=RUNS,
        stateful_step_count=12,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    await asyncio.to_thread(run_state_machine_as_test, TwoTenants, settings=machine_settings)
