"""What a request meets before its handler, checked against the OpenAPI document: a 405
names every method of the path (core.routing)."""

from __future__ import annotations

import uuid

import httpx

from tests.security.test_cross_tenant import openapi
from tests.security.world import PARAM

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def test_a_405_names_every_method_of_its_path(client: httpx.AsyncClient) -> None:
    """OPTIONS and each undocumented method, on every path: 405, and `Allow` lists exactly
    the documented methods (schemathesis's `allow_header_conformance` asks the same)."""
    document = await openapi(client)
    wrong = []
    for path, item in document["paths"].items():
        documented = {method.upper() for method in item}
        url = PARAM.sub(str(uuid.uuid4()), path)
        for method in ("OPTIONS", *(m for m in METHODS if m not in documented)):
            response = await client.request(method, url)
            allowed = {m.strip() for m in response.headers.get("allow", "").split(",")}
            if response.status_code != 405 or allowed != documented:
                wrong.append((method, path, response.status_code, response.headers.get("allow")))
    assert wrong == []
