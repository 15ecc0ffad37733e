"""Schemathesis over every operation of `/openapi.json`, in process, as tenant A's admin.

Schemathesis only generates the cases here; they are sent through the test's own httpx
client, so every request runs on the per-test database in this event loop (its ASGI
transport would run the app on another loop in a thread). Half the cases carry ids of real
objects (`world.FACTORIES`), so handlers past the lookup are fuzzed too, not only 404s.

`make test` runs a bounded pass (`FUZZ_EXAMPLES`, default 2 valid and 2 invalid cases an
operation, ~350 requests); `make fuzz` runs 50 of each.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Tenant, login
from tests.security.test_cross_tenant import STREAMS, openapi
from tests.security.world import PARAM, World
from touchstone.core.db import Database

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2"))
DERANDOMIZE = "FUZZ_EXAMPLES" not in os.environ
"""`make test` sends the same cases every run (a finding there is never a flake); `make fuzz`
explores anew each time."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FRESH_SESSION = {("POST", "/api/v1/auth/logout")}
"""Ends the session it is called with: each case gets a token of its own."""


def generate(operation: Any, mode: GenerationMode, count: int) -> list[Case]:
    cases: list[Case] = []

    @hypothesis_settings(
        max_examples=count,
        derandomize=DERANDOMIZE,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def collect(case: Case) -> None:
        cases.append(case)

    with contextlib.suppress(Unsatisfiable):  # nothing to make invalid: no inputs
        collect()
    return cases


async def send(client: httpx.AsyncClient, case: Case, headers: dict[str, str]) -> httpx.Response:
    """Encode as schemathesis would for `requests` (it knows its own multipart and form
    quirks), then send those exact bytes through the test's client."""
    kwargs = case.as_transport_kwargs(base_url="http://test", headers=headers)
    prepared = requests.Request(**{k: v for k, v in kwargs.items() if k in _REQUEST_ARGS}).prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    request = client.build_request(
        str(prepared.method), str(prepared.url), headers=dict(prepared.headers), content=body
    )
    return await client.send(request)


_REQUEST_ARGS = {"method", "url", "headers", "files", "data", "params", "json"}


@pytest.mark.slow  # ~40 s: in `make test` and CI, not in `make test-fast`
async def test_every_operation_survives_fuzzing(
    client: httpx.AsyncClient, tenant_a: Tenant, database: Database
) -> None:
    document = await openapi(client)
    schema = schemathesis.openapi.from_dict(document)
    world = World(client, database, tenant_a)
    # Every object first: fuzzed settings (say, "registered devices only") must not stop a
    # factory half-way through the run.
    ids = {path: await world.ids_for(path) for path in document["paths"] if PARAM.search(path)}
    failures: list[str] = []
    sent = operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMS:
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
            for number, case in enumerate(generate(operation, mode, EXAMPLES)):
                real = ids.get(operation.path)
                if real and number % 2 == 0 and mode is GenerationMode.POSITIVE:
                    case.path_parameters = {**(case.path_parameters or {}), **real}
                headers = tenant_a.headers
                if (operation.method.upper(), operation.path) in FRESH_SESSION:
                    token = await login(client, tenant_a.admin_email)
                    headers = {"Authorization": f"Bearer {token}"}
                response = await send(client, case, headers)
                sent += 1
                try:
                    case.validate_response(response, checks=checks, headers=headers)
                except FailureGroup as group:
                    failures.append(f"{operation.method.upper()} {operation.path}: {group}")
    print(f"schemathesis: {operations} operations, {sent} cases, {len(failures)} failing")
    assert failures == [], "\n".join(failures[:20]) + f"\n({len(failures)} failures)"
    assert sent >= EXAMPLES * 80
