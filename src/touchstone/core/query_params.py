"""Query parameters read as one Pydantic model, in one validation a request.

FastAPI validates each declared query parameter on its own, with reflection over its
annotation on every request: about 20 µs of CPU a parameter here, so a filtered list with
nine of them spent 200 µs before its handler ran, and a query *model*
(`Annotated[Model, Query()]`) cost twice what validating the model once costs. A route
declares `Annotated[Model, Depends(query_model(Model))]` instead: the dependency takes the
request alone and validates the parameters it finds with `Model.model_validate`, so the
work per field is done once, when the model is built. Errors are FastAPI's own
`RequestValidationError` with the same `("query", name)` locations, so clients see the same
problem document. FastAPI cannot document parameters it does not resolve, so `core.openapi`
adds them to the operation from the model's JSON schema (`document_query_models`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError

from touchstone.core.deps import dependency_calls

M = TypeVar("M", bound=BaseModel)
_REFS = "#/components/schemas/{model}"


def query_model(model: type[M]) -> Callable[[Request], Coroutine[Any, Any, M]]:
    """Dependency factory: the request's query parameters (by their aliases) as `model`."""
    names = tuple(field.alias or name for name, field in model.model_fields.items())

    async def dependency(request: Request) -> M:
        params = request.query_params
        try:
            return model.model_validate({name: params[name] for name in names if name in params})
        except ValidationError as exc:
            raise RequestValidationError(
                [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
            ) from None

    dependency.__name__ = f"query_{model.__name__}"
    dependency.query_model = model  # type: ignore[attr-defined]  # read by document_query_models
    return dependency


def document_query_models(app: FastAPI, document: dict[str, Any]) -> None:
    """Each `query_model` field as a query parameter of its operations, as FastAPI would
    have written it; definitions the fields refer to go to the components."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        models = [
            model
            for call in dependency_calls(route.dependant)
            if (model := getattr(call, "query_model", None)) is not None
        ]
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            parameters = operation.setdefault("parameters", [])
            for model in models:
                parameters.extend(_parameters(model, components))


def _parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True, ref_template=_REFS)
    components.update(schema.get("$defs", {}))
    required = set(schema.get("required", ()))
    parameters = []
    for name, field_schema in schema.get("properties", {}).items():
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if description := field_schema.get("description"):
            parameter["description"] = description
        parameter["schema"] = field_schema
        parameters.append(parameter)
    return parameters
