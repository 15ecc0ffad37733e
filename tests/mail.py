"""A real SMTP server for the tests (aiosmtpd, in a thread) that records what it receives,
and helpers to read emails: delivered ones from the server, queued ones from the outbox.

Replies can be scripted per recipient (a 4xx once, a 5xx for good), so retries and
refusals are exercised over the real protocol.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from sqlalchemy import select

from touchstone.core.config import Settings
from touchstone.core.db import Database
from touchstone.core.email.local_server import LocalMailServer
from touchstone.core.email.message import open_message
from touchstone.core.email.models import OutboundEmail

TOKEN = re.compile(r"#token=([A-Za-z0-9_-]+)")
OK = "250 2.0.0 Message accepted for delivery"


@dataclass
class Delivered:
    mail_from: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class RecordingHandler:
    received: list[Delivered] = field(default_factory=list)
    data_replies: dict[str, list[str]] = field(default_factory=dict)
    """recipient -> the next replies to DATA (then 250)."""
    refused_recipients: dict[str, str] = field(default_factory=dict)
    """recipient -> the reply to RCPT, every time."""

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refused_recipients:
            return self.refused_recipients[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        for recipient in envelope.rcpt_tos:
            if replies := self.data_replies.get(recipient):
                return replies.pop(0)
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        self.received.append(Delivered(envelope.mail_from, list(envelope.rcpt_tos), message))
        return OK


class MailServer:
    def __init__(self) -> None:
        self.handler = RecordingHandler()
        self.server = LocalMailServer(self.handler)
        self.host, self.port = self.server.host, self.server.port

    def to(self, address: str) -> list[Delivered]:
        return [d for d in self.handler.received if address in d.recipients]

    def refuse(self, address: str, reply: str = "550 5.1.1 Mailbox unavailable") -> None:
        self.handler.refused_recipients[address] = reply

    def defer_once(self, address: str, reply: str = "451 4.3.0 Try again later") -> None:
        self.handler.data_replies.setdefault(address, []).append(reply)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def token_in(message: EmailMessage) -> str:
    """The one-time token of the link in the mail (the same in both parts)."""
    (token,) = set(TOKEN.findall(text_of(message)))
    assert f"#token={token}" in html_of(message)
    return token


async def queued(
    database: Database, settings: Settings, org_id: uuid.UUID, to_address: str
) -> Sequence[EmailMessage]:
    """Emails queued (not yet sent) to `to_address` in the org, oldest first, opened."""
    async with database.transaction(org_id=org_id) as session:
        rows = (
            await session.execute(
                select(OutboundEmail)
                .where(OutboundEmail.org_id == org_id, OutboundEmail.to_address == to_address)
                .order_by(OutboundEmail.created_at)
            )
        ).scalars()
        return [open_message(settings, r.sealed_message) for r in rows if r.sealed_message]
