"""Webhook fixtures: a fake DNS, a tiny HTTP receiver on 127.0.0.x, and fast delivery settings.

Nothing here talks to anything but 127.0.0.0/8: names resolve through a table, and the
receivers are `asyncio.start_server` sockets in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from tests.conftest import Tenant
from tests.core.jobs.conftest import drain

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.events import publish
from touchstone.core.events.relay import OutboxRelay
from touchstone.core.postgres import DatabaseUrls
from touchstone.main import create_app
from touchstone.webhooks import tasks
from touchstone.webhooks.dependencies import SettingsDep, target_policy
from touchstone.webhooks.service import on_events
from touchstone.webhooks.targets import Resolver, TargetPolicy

API = "/api/v1"
PUBLIC_IP = "93.184.216.34"  # never contacted: registration resolves, it does not connect
NAMES = {
    "hooks.example.com": [PUBLIC_IP],
    "internal.example.com": ["10.0.0.5"],
    "mixed.example.com": [PUBLIC_IP, "10.0.0.5"],
    "metadata.example.com": ["169.254.169.254"],
    "v6.example.com": ["::1"],
    "hooks.test": ["127.0.0.1"],
}


def fake_resolver(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.1/32"),)


def only_localhost(**names: list[str]) -> TargetPolicy:
    """What the end-to-end tests use: http allowed, and of all private space only 127.0.0.1.

    `hooks_test=["10.0.0.5"]` makes hooks.test resolve there instead (underscores are dots).
    """
    table = NAMES | {k.replace("_", "."): v for k, v in names.items()}
    return TargetPolicy(
        allow_http=True, allowed_networks=LOOPBACK_ONLY, resolver=fake_resolver(table)
    )


def policy_override(table: dict[str, list[str]]) -> Callable[[Settings], TargetPolicy]:
    """The app's policy (from its settings) with the fake DNS."""

    def override(settings: SettingsDep) -> TargetPolicy:
        return dataclasses.replace(
            TargetPolicy.from_settings(settings), resolver=fake_resolver(table)
        )

    return override


def app_client(settings: Settings, database: Database) -> httpx.AsyncClient:
    app = create_app(settings, database=database)
    app.dependency_overrides[target_policy] = policy_override(NAMES)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The root `client` (per-test rollback), with the fake DNS for registrations."""
    async with app_client(settings, database) as client:
        yield client


# --- a receiver ------------------------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes] | Literal["hang"]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """HTTP/1.1 just enough for webhooks: scripted replies per path, 200 "ok" otherwise."""

    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    requests: list[Received] = field(default_factory=list)
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    port: int = 0
    _server: asyncio.Server | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._closing.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def url(self, path: str = "/hook", *, host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        self.replies.setdefault(path, []).extend(replies)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(method, path, headers, body))
            queue = self.replies.get(path)
            reply = queue.pop(0) if queue else (200, {}, b"ok")
            if reply == "hang":
                await self._closing.wait()
                return
            status, extra, content = reply
            lines = [f"HTTP/1.1 {status} Scripted", f"Content-Length: {len(content)}"]
            lines += ["Connection: close", *(f"{k}: {v}" for k, v in extra.items())]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + content)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


# --- delivering for real, fast ---------------------------------------------------------


@pytest.fixture
def worker_settings(settings: Settings) -> dict[str, Settings]:
    """The settings the drained worker (and so the delivery job) runs with."""
    return {"current": settings}


@pytest.fixture
def delivery_settings(
    worker_settings: dict[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Settings the delivery job sees (http and 127.0.0.1 allowed), and no backoff.

    Production waits 3 ** n seconds between attempts; here retries are due at once so a
    drained worker runs them all. Call the fixture's value to change settings.
    """
    settings = worker_settings["current"]

    def configure(**overrides: Any) -> Settings:
        values = {
            "webhook_allow_http": True,
            "webhook_allow_private_targets": True,
            "webhook_timeout_seconds": 2.0,
            "webhook_max_attempts": 3,
        } | overrides
        configured = settings.model_copy(update=values)
        worker_settings["current"] = configured
        return configured

    monkeypatch.setattr(tasks.deliver_webhook.retry_strategy, "backoff_seconds", 0)
    configure()
    return configure


@pytest.fixture
async def webhook_client(
    delivery_settings: Callable[..., Settings], committed: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the committed database, configured like the delivery job."""
    async with app_client(delivery_settings(), committed) as client:
        yield client


async def register(
    client: httpx.AsyncClient, tenant: Tenant, url: str, topics: Sequence[str] = ()
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/webhooks", headers=tenant.headers, json={"url": url, "topics": list(topics)}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def emit(committed: Database, tenant: Tenant, topic: str, **data: Any) -> str:
    async with committed.transaction(org_id=tenant.org_id) as session:
        event = await publish(session, tenant.org_id, topic, aggregate=("batch", "b-1"), data=data)
    return str(event.event_id)


async def relay(committed: Database, database_urls: DatabaseUrls) -> None:
    """Number every committed event and hand it to the webhook consumer, as the API does."""
    outbox = OutboxRelay(committed, database_urls.runtime, [on_events])
    while await outbox.relay_once():
        pass


Deliver = Callable[[], Awaitable[None]]


@pytest.fixture
def deliver(
    committed: Database, database_urls: DatabaseUrls, worker_settings: dict[str, Settings]
) -> Deliver:
    """Relay the committed events, then run the worker until no delivery job is due."""

    async def run() -> None:
        await relay(committed, database_urls)
        await drain(worker_settings["current"], database_urls)

    return run


async def deliveries(
    client: httpx.AsyncClient, tenant: Tenant, webhook_id: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        f"{API}/webhooks/{webhook_id}/deliveries", headers=tenant.headers, params=params
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def delivery_detail(
    client: httpx.AsyncClient, tenant: Tenant, webhook_id: str, delivery_id: str
) -> dict[str, Any]:
    response = await client.get(
        f"{API}/webhooks/{webhook_id}/deliveries/{delivery_id}", headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
