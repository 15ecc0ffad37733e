"""`/dev/mail`: what the development SMTP server received, for the developer on this machine
(`/dev/mail.json` for scripts).

Mounted only in development without SMTP_HOST. The mails hold invitation and reset links,
so only this machine may look: the client must be a loopback address, name the server by a
loopback name (a DNS-rebinding page in the developer's browser reaches 127.0.0.1 under its
own name and is refused) and come through no proxy. Anyone else gets the 404 of a route
that is not there. Pages are never cached; a mail's HTML is shown in a sandboxed frame with
no scripts and nothing loaded from elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from html import escape
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from touchstone.core.config import Settings
from touchstone.core.email.local_server import MailStore, StoredMail, development_server_port
from touchstone.core.errors import NotFound
from touchstone.core.routing import ApiRouter

PATH = "/dev/mail"
MAX_WAIT_SECONDS = 30
POLL_SECONDS = 0.2
LINK = re.compile(r"https?://\S+")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
"""The frame with a mail's HTML inherits it: its inline styles show, nothing else loads."""
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP,
    "X-Robots-Tag": "noindex",
}
STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:2rem;max-width:72rem}"
    "table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem .6rem;"
    "border-bottom:1px solid #ddd;vertical-align:top}pre{white-space:pre-wrap;background:#f6f6f6;"
    "padding:1rem}iframe{width:100%;height:32rem;border:1px solid #ccc}"
)


def local_developer(request: Request) -> None:
    client = request.scope.get("client")
    try:
        loopback = client is not None and ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        loopback = False
    hostname = urlsplit("//" + request.headers.get("host", "")).hostname or ""
    proxied = any(name in request.headers for name in PROXY_HEADERS)
    if not loopback or proxied or hostname not in LOOPBACK_NAMES:
        raise NotFound()


router = ApiRouter(include_in_schema=False, dependencies=[Depends(local_developer)])


def _store(request: Request) -> MailStore:
    settings: Settings = request.app.state.settings
    return MailStore(settings.mail_dir)


Store = Annotated[MailStore, Depends(_store)]


def _page(title: str, body: str) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(html, headers=HEADERS)


def _header(mail: StoredMail, name: str) -> str:
    return escape(str(mail.message.get(name, "")))


@router.get(PATH)
async def list_mail(request: Request, store: Store) -> Response:
    settings: Settings = request.app.state.settings
    mails = store.latest()
    port = settings.dev_mail_port or development_server_port(settings.mail_dir) or "(not running)"
    rows = "".join(
        f"<tr><td>{m.received_at:%Y-%m-%d %H:%M:%S} UTC</td><td>{escape(', '.join(m.recipients))}"
        f'</td><td><a href="{PATH}/{quote(m.key)}">{_header(m, "Subject") or "(no subject)"}'
        "</a></td></tr>"
        for m in mails
    )
    body = (
        f"<h1>Sent mail</h1><p>{len(mails)} received by the development SMTP server on "
        f"127.0.0.1:{port}, newest first (kept in "
        f"<code>{escape(str(settings.mail_dir))}</code>).</p>"
        "<table><tr><th>Received</th><th>To (envelope)</th><th>Subject</th></tr>"
        f"{rows}</table>"
    )
    return _page("Sent mail", body)


@router.get(f"{PATH}.json")
async def mail_as_json(
    store: Store,
    to: Annotated[str | None, Query(max_length=320, description="An envelope recipient")] = None,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
) -> Response:
    """The same mails for scripts, newest first, with their text and links; `wait` seconds
    for one to `to` to arrive (the worker sends it a moment after the request that queued
    it)."""
    deadline = time.monotonic() + wait
    while True:
        mails = [m for m in store.latest() if to is None or to.lower() in m.lower_recipients]
        if mails or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    items = [
        {
            "key": m.key,
            "received_at": m.received_at.isoformat(),
            "to": m.recipients,
            "subject": str(m.message.get("Subject", "")),
            "text": text,
            "links": LINK.findall(text),
        }
        for m in mails
        for text in [m.part("plain") or ""]
    ]
    return JSONResponse(items, headers={"Cache-Control": "no-store"})


def _found(store: MailStore, key: str) -> StoredMail:
    mail = store.get(key)
    if mail is None:
        raise NotFound("No such mail")
    return mail


@router.get(f"{PATH}/{{key}}")
async def show_mail(key: str, store: Store) -> Response:
    mail = _found(store, key)
    fields = "".join(
        f"<tr><th>{label}</th><td>{value}</td></tr>"
        for label, value in (
            ("From", _header(mail, "From")),
            ("To", _header(mail, "To")),
            ("Envelope recipients", escape(", ".join(mail.recipients))),
            ("Subject", _header(mail, "Subject")),
            ("Date", _header(mail, "Date")),
        )
    )
    text, html = mail.part("plain"), mail.part("html")
    body = f'<p><a href="{PATH}">All mail</a> · <a href="{PATH}/{quote(key)}/raw">Raw</a></p>'
    body += f"<table>{fields}</table>"
    if html is not None:
        body += f'<h2>HTML</h2><iframe sandbox title="HTML part" srcdoc="{escape(html)}"></iframe>'
    if text is not None:
        body += f"<h2>Plain text</h2><pre>{escape(text)}</pre>"
    return _page(str(mail.message.get("Subject", "Mail")), body)


@router.get(f"{PATH}/{{key}}/raw")
async def raw_mail(key: str, store: Store) -> Response:
    mail = _found(store, key)
    return PlainTextResponse(mail.message.as_string(), headers=HEADERS)
