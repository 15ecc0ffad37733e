"""Requests the OpenAPI document calls valid are not refused for what they carry in the URL.

Schemathesis generates valid values for every string parameter of the path and query and
sends them as tenant A's admin; none may meet the middleware's control-character refusal
(its ST202, "schema-valid request rejected", in an outside run before core.openapi).
"""

from __future__ import annotations

import httpx
import schemathesis
from schemathesis import GenerationMode

from tests.conftest import Tenant
from tests.security.test_cross_tenant import STREAMS, openapi
from tests.security.test_fuzz import generate, send

CASES = 25
"""Valid cases an operation: enough for Hypothesis to try its favourite awkward strings."""


def _has_text_in_url(operation: schemathesis.APIOperation) -> bool:
    return any(
        parameter.location in ("path", "query") and "string" in str(parameter.definition)
        for parameter in operation.iter_parameters()
    )


async def test_valid_urls_are_not_refused_for_control_characters(
    client: httpx.AsyncClient, tenant_a: Tenant
) -> None:
    schema = schemathesis.openapi.from_dict(await openapi(client))
    refused, sent = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMS or not _has_text_in_url(operation):
            continue
        for case in generate(operation, GenerationMode.POSITIVE, CASES):
            response = await send(client, case, tenant_a.headers)
            sent += 1
            if response.status_code == 422 and "Control characters" in response.text:
                refused.append(f"{operation.label}: {response.request.url}")
    assert refused == []
    assert sent >= CASES * 10
