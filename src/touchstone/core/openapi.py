"""What the OpenAPI document adds to FastAPI's: the rules the app enforces before any route.

`RequestContextMiddleware` refuses a URL carrying a control character (%00-%1F, %7F) with a
422 before routing, while FastAPI documents a path or query parameter as any string: a
client (or schemathesis, ST202 "schema-valid request rejected") following the document
could send a request the app refuses. Every string parameter of the path and the query
string is documented with a pattern that excludes control characters. A parameter that
has its own pattern, format or enum keeps it (tests/core/test_routing.py checks that each
of those excludes them too).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

URL_TEXT = "^[^\\x00-\\x1f\\x7f]*$"
"""A value the middleware lets through: no C0 control character, no DEL."""
_IN_URL = ("path", "query")


def describe_url_rules(app: FastAPI) -> None:
    """Amend the document FastAPI builds (once; it is cached) with the URL rules."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()  # cached by FastAPI: amended once
        for item in document.get("paths", {}).values():
            for operation in item.values():
                for parameter in operation.get("parameters", ()):
                    if parameter.get("in") in _IN_URL:
                        _exclude_control_characters(parameter.get("schema", {}))
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def _exclude_control_characters(schema: dict[str, Any]) -> None:
    for alternative in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        _exclude_control_characters(alternative)
    if schema.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(schema):
        schema["pattern"] = URL_TEXT
