"""What the OpenAPI document adds to FastAPI's: the rules the app enforces before any route.

`RequestContextMiddleware` refuses a URL carrying a control character (%00-%1F, %7F) with a
422 before routing, while FastAPI documents a path or query parameter as any string: a
client (or schemathesis, ST202 "schema-valid request rejected") following the document
could send a request the app refuses. Every string parameter of the path and the query
string is documented with a pattern that excludes control characters. A parameter that
has its own pattern, format or enum keeps it (tests/core/test_routing.py checks that each
of those excludes them too).

It also adds the query parameters routes read as one model (`core.query_params`), and names
the credentials of each authenticated operation: `deps.authenticate` reads
both headers itself rather than through FastAPI's security dependencies (which would cost
their resolution on every request), so FastAPI cannot see them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security.base import SecurityBase

from touchstone.core.deps import api_key_scheme, authenticates, bearer_scheme
from touchstone.core.query_params import document_query_models

URL_TEXT = "^[^\\x00-\\x1f\\x7f]*$"
"""A value the middleware lets through: no C0 control character, no DEL."""
_IN_URL = ("path", "query")
_SCHEMES: tuple[SecurityBase, ...] = (bearer_scheme, api_key_scheme)


def amend_openapi(app: FastAPI) -> None:
    """Amend the document FastAPI builds (once; it is cached) with the URL rules and the
    credentials of the authenticated operations."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()  # cached by FastAPI: amended once
        document_query_models(app, document)
        for item in document.get("paths", {}).values():
            for operation in item.values():
                for parameter in operation.get("parameters", ()):
                    if parameter.get("in") in _IN_URL:
                        _exclude_control_characters(parameter.get("schema", {}))
        _name_credentials(app, document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def _exclude_control_characters(schema: dict[str, Any]) -> None:
    for alternative in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        _exclude_control_characters(alternative)
    if schema.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(schema):
        schema["pattern"] = URL_TEXT


def _name_credentials(app: FastAPI, document: dict[str, Any]) -> None:
    """Either credential, on every operation whose route authenticates."""
    requirement: list[dict[str, list[str]]] = [{scheme.scheme_name: []} for scheme in _SCHEMES]
    named = False
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        if not authenticates(route.dependant):
            continue
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                operation["security"] = requirement
                named = True
    if named:
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        for scheme in _SCHEMES:
            schemes[scheme.scheme_name] = jsonable_encoder(
                scheme.model, by_alias=True, exclude_none=True
            )
