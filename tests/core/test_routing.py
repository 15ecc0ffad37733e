"""What a request meets before its handler, checked against the OpenAPI document: a 405
names every method of the path (core.routing), and URL parameters are documented without
the control characters the middleware refuses (core.openapi)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match

from tests.security.test_cross_tenant import openapi
from tests.security.world import PARAM
from touchstone.core.reads import TenantRead, tenant_read
from touchstone.core.routing import (
    ApiRouter,
    LimitedRoute,
    include_flat,
    literal_parts,
    require_authentication,
)

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


CONTROL = [chr(code) for code in (*range(0x20), 0x7F)]


def _text_schemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for alternative in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        yield from _text_schemas(alternative)
    if schema.get("type") == "string":
        yield schema


async def test_url_parameters_are_documented_without_control_characters(
    client: httpx.AsyncClient,
) -> None:
    """The middleware refuses control characters anywhere in the URL (422): every string
    parameter of the path or query says so with its pattern (or is a format or an enum that
    cannot hold one), so a request the document allows is never refused for them."""
    document = await openapi(client)
    loose = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", ()):
                if parameter["in"] not in ("path", "query"):
                    continue
                for schema in _text_schemas(parameter["schema"]):
                    if "format" in schema or "enum" in schema:
                        continue
                    pattern = re.compile(schema.get("pattern", ".*"))
                    if any(pattern.search(f"a{char}b") for char in CONTROL):
                        loose.append((method, path, parameter["name"]))
    assert loose == []
    assert document["paths"]["/api/v1/users"]["get"]  # the walk saw the API


def test_an_authenticated_router_refuses_a_route_that_does_not_authenticate() -> None:
    """The API's routers carry no router-wide `authenticate` (it would cost a dependency on
    every request): a route that authenticates by none of its own stops start-up."""
    router = ApiRouter()

    @router.get("/open")
    async def open_route() -> None:
        return None

    @router.get("/read")
    async def read_route(read: Annotated[TenantRead, Depends(tenant_read("users:read"))]) -> None:
        return None

    with pytest.raises(TypeError, match="/open"):
        require_authentication(router)
    router.routes.pop(0)
    require_authentication(router)


def test_routes_are_included_flat_and_refuse_paths_without_their_literal_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nested routers land in the app's own table with their prefixes, and only a path
    holding all of a route's literal parts reaches FastAPI's regex matching (which the 405
    test above proves right for every documented path)."""
    router, inner = ApiRouter(prefix="/batches"), ApiRouter()
    inner.add_api_route("/{batch_id}/report", lambda: None, tags=["inner"])
    router.include_router(inner)
    app = FastAPI()
    include_flat(app, router, prefix="/v1", tags=["outer"])
    (report,) = app.router.routes[len(FastAPI().router.routes) :]
    assert isinstance(report, LimitedRoute)
    assert (report.path, report.tags) == ("/v1/batches/{batch_id}/report", ["outer", "inner"])
    assert literal_parts(report.path) == ("/v1/batches/", "/report")

    reached: list[str] = []

    def fastapi_matching(self: object, scope: dict[str, Any]) -> tuple[Match, dict[str, Any]]:
        reached.append(scope["path"])
        return Match.NONE, {}

    monkeypatch.setattr(APIRoute, "matches", fastapi_matching)
    for path in ("/v1/batches/7/report", "/v2/users", "/v1/batches/7/rows"):
        report.matches({"type": "http", "method": "GET", "path": path})
    assert reached == ["/v1/batches/7/report"]
