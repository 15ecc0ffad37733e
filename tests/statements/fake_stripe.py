"""Stripe's HTTP API, as far as Touchstone uses it, on 127.0.0.1 (a real socket).

The production client (`StripeBilling`, the official SDK with its httpx transport) talks to
it through `STRIPE_API_BASE`: form-encoded requests with the secret key as bearer token and
`Idempotency-Key`, JSON objects back, and Stripe's error shape (`resource_missing` 404s).
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "sk_test_touchstone"


def _form(body: bytes) -> dict[str, Any]:
    """`a=1&metadata[k]=v` -> {"a": "1", "metadata": {"k": "v"}} (one level, as we send)."""
    parsed: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(body.decode(), keep_blank_values=True):
        if "[" in key:
            outer, inner = key.rstrip("]").split("[", 1)
            parsed.setdefault(outer, {})[inner] = value
        else:
            parsed[key] = value
    return parsed


def _error(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    error = {"type": "invalid_request_error", "code": code, "message": message}
    return JSONResponse({"error": error | ({"param": param} if param else {})}, status)


@dataclass
class FakeStripe:
    url: str = ""
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _replies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_customer(self, *, metadata: dict[str, str] | None = None, deleted: bool = False) -> str:
        customer_id = f"cus_{uuid.uuid4().hex[:14]}"
        self.customers[customer_id] = (
            {"id": customer_id, "object": "customer", "deleted": True}
            if deleted
            else self._customer(customer_id, "", metadata or {})
        )
        return customer_id

    @staticmethod
    def _customer(customer_id: str, name: str, metadata: dict[str, str]) -> dict[str, Any]:
        return {
            "id": customer_id,
            "object": "customer",
            "name": name,
            "metadata": metadata,
            "created": int(time.time()),
            "livemode": False,
        }

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/customers", self._create_customer, methods=["POST"]),
                Route("/v1/customers/{id}", self._customer_route, methods=["GET", "POST"]),
                Route("/v1/billing/meter_events", self._meter_event, methods=["POST"]),
            ]
        )

    async def _read(self, request: Request) -> dict[str, Any] | JSONResponse:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse(
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}, 401
            )
        form = _form(await request.body())
        self.requests.append((request.method, request.url.path, form))
        return form

    async def _create_customer(self, request: Request) -> JSONResponse:
        form = await self._read(request)
        if isinstance(form, JSONResponse):
            return form
        key = request.headers.get("idempotency-key")
        if key and key in self._replies:
            return JSONResponse(self._replies[key])
        customer_id = f"cus_{uuid.uuid4().hex[:14]}"
        customer = self._customer(customer_id, form.get("name", ""), form.get("metadata", {}))
        self.customers[customer_id] = customer
        if key:
            self._replies[key] = customer
        return JSONResponse(customer)

    async def _customer_route(self, request: Request) -> JSONResponse:
        form = await self._read(request)
        if isinstance(form, JSONResponse):
            return form
        customer_id = request.path_params["id"]
        customer = self.customers.get(customer_id)
        if customer is None or (request.method == "POST" and customer.get("deleted")):
            return _error(404, "resource_missing", f"No such customer: '{customer_id}'", "id")
        if request.method == "POST":
            customer["metadata"] = customer["metadata"] | form.get("metadata", {})
        return JSONResponse(customer)

    async def _meter_event(self, request: Request) -> JSONResponse:
        form = await self._read(request)
        if isinstance(form, JSONResponse):
            return form
        return JSONResponse({"object": "billing.meter_event", **form})


@asynccontextmanager
async def fake_stripe_server() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the fake Stripe failed to start"
        await asyncio.sleep(0.02)
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        await task
