"""The development mail viewer: what the local server received, to this machine only."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.email import Mail, build_message
from touchstone.core.email.engine import SmtpEngine
from touchstone.core.email.local_server import (
    LocalMailServer,
    MaildirHandler,
    development_server_port,
    free_port,
    start_development_server,
)
from touchstone.core.email.viewer import CSP, PATH
from touchstone.main import create_app

HOSTILE_SUBJECT = "<img src=x onerror=alert(1)>"
HOSTILE_HTML = '<p>hi</p><script>alert("x")</script>" onload="alert(2)'


def _development(settings: Settings, mail_dir: Path, **overrides: object) -> Settings:
    values = {
        "environment": "development",
        "smtp_host": None,
        "dev_mail_dir": mail_dir,
        "log_format": "json",  # logging is process-wide: keep the suite's format
    } | overrides
    return settings.model_copy(update=values)


async def _send(port: int, to: str) -> None:
    mail = Mail(to, "Dev", HOSTILE_SUBJECT, "the plain part\n", HOSTILE_HTML)
    engine = SmtpEngine("127.0.0.1", port, security="none", envelope_from="t@localhost")
    await engine.send(build_message(mail, "Touchstone <touchstone@localhost>"), [to])


@pytest.fixture
async def sent(tmp_path: Path) -> tuple[Path, str]:
    """A development server (as the platform starts it) that received one hostile mail."""
    mail_dir = tmp_path / "devmail"
    server = LocalMailServer(MaildirHandler(mail_dir)).start()
    to = f"dev-{uuid.uuid4().hex[:6]}@example.com"
    try:
        await _send(server.port, to)
    finally:
        server.stop()
    return mail_dir, to


def _client(
    app: FastAPI, client_host: str = "127.0.0.1", base: str = "http://localhost:8000"
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
    return httpx.AsyncClient(transport=transport, base_url=base)


async def test_the_developer_sees_the_mail_escaped_and_uncached(
    settings: Settings, database: Database, sent: tuple[Path, str]
) -> None:
    mail_dir, to = sent
    app = create_app(_development(settings, mail_dir), database=database)
    async with _client(app) as client:
        listing = await client.get("/dev/mail")
        assert listing.status_code == 200, listing.text
        assert listing.headers["content-type"].startswith("text/html")
        assert listing.headers["cache-control"] == "no-store"
        assert listing.headers["content-security-policy"] == CSP
        assert to in listing.text
        assert HOSTILE_SUBJECT not in listing.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in listing.text
        (link,) = [part.split('"')[0] for part in listing.text.split('href="')[1:]]

        shown = await client.get(link)
        assert shown.status_code == 200, shown.text
        assert shown.headers["cache-control"] == "no-store"
        assert "<script>" not in shown.text
        assert 'srcdoc="&lt;p&gt;hi&lt;/p&gt;&lt;script&gt;' in shown.text
        assert "<iframe sandbox " in shown.text
        assert "<pre>the plain part" in shown.text

        raw = await client.get(f"{link}/raw")
        assert raw.status_code == 200
        assert raw.headers["content-type"].startswith("text/plain")
        assert f"X-RcptTo: {to}" in raw.text

        listed = (await client.get("/dev/mail.json", params={"to": to.upper()})).json()
        assert [m["subject"] for m in listed] == [HOSTILE_SUBJECT]  # JSON: no markup to fear
        assert listed[0]["to"] == [to]
        assert listed[0]["text"].splitlines() == ["the plain part"]
        nobody = await client.get("/dev/mail.json", params={"to": "nobody@example.com"})
        assert nobody.json() == []
        assert nobody.headers["cache-control"] == "no-store"

        for missing in ("/dev/mail/nope", "/dev/mail/..%2F..%2Fsecret_key", "/dev/mail/a%00b"):
            assert (await client.get(missing)).status_code in (404, 422)


@pytest.mark.parametrize(
    ("client_host", "base", "headers"),
    [
        ("10.0.0.7", "http://localhost:8000", {}),  # another machine
        ("127.0.0.1", "http://rebound.example.com:8000", {}),  # DNS rebinding in a browser
        ("127.0.0.1", "http://test", {}),
        ("127.0.0.1", "http://localhost:8000", {"X-Forwarded-For": "203.0.113.9"}),  # a proxy
        ("127.0.0.1", "http://localhost:8000", {"Forwarded": "for=203.0.113.9"}),
    ],
)
async def test_anyone_but_this_machine_finds_nothing(
    settings: Settings,
    database: Database,
    sent: tuple[Path, str],
    client_host: str,
    base: str,
    headers: dict[str, str],
) -> None:
    app = create_app(_development(settings, sent[0]), database=database)
    async with _client(app, client_host, base) as client:
        for path in ("/dev/mail", "/dev/mail.json"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 404
            assert sent[1] not in response.text


@pytest.mark.parametrize(
    "overrides",
    [
        {"environment": "test"},
        {"environment": "production"},
        {"smtp_host": "smtp.example.com"},  # development with a real server: nothing local
    ],
)
def test_the_viewer_exists_only_in_development_without_an_smtp_server(
    settings: Settings, tmp_path: Path, overrides: dict[str, object]
) -> None:
    # Routes, not requests: a production app caches its loggers process-wide on first use.
    mounted = create_app(_development(settings, tmp_path)).routes
    assert any(r.path_format.startswith(PATH) for r in iter_route_contexts(mounted))
    routes = create_app(_development(settings, tmp_path, **overrides)).routes
    assert not any(r.path_format.startswith(PATH) for r in iter_route_contexts(routes))


async def test_a_second_process_leaves_the_port_to_the_first(tmp_path: Path) -> None:
    first = start_development_server(tmp_path / "a", free_port("127.0.0.1"))
    assert first is not None
    try:
        assert development_server_port(tmp_path / "a") == first.port  # for the workers
        assert start_development_server(tmp_path / "b", first.port) is None
        await _send(first.port, "x@example.com")
        assert len(list((tmp_path / "a" / "new").iterdir())) == 1
    finally:
        first.stop()


async def test_a_script_can_wait_for_the_mail_it_caused(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    mail_dir = tmp_path / "waiting"
    server = LocalMailServer(MaildirHandler(mail_dir)).start()
    app = create_app(_development(settings, mail_dir), database=database)
    to = f"later-{uuid.uuid4().hex[:6]}@example.com"

    async def send_soon() -> None:
        await asyncio.sleep(0.3)  # the worker's moment
        await _send(server.port, to)

    try:
        async with _client(app) as client:
            waited, _ = await asyncio.gather(
                client.get("/dev/mail.json", params={"to": to, "wait": 20}), send_soon()
            )
    finally:
        server.stop()
    assert [m["to"] for m in waited.json()] == [[to]]
