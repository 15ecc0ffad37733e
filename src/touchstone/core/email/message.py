"""One email as the platform writes it: plain text and HTML (multipart/alternative).

Header values are built from objects (`Address`), never from concatenated strings, and
every user-controlled part of a header is reduced to one line first: a name holding CR/LF
(a `full_name` or an org's name may) cannot start a header of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_string, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from touchstone.core.config import Settings
from touchstone.core.crypto import Sealer

_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
MAX_HEADER_TEXT = 200
SEAL_PURPOSE = "outbound-email"


def header_text(value: str, limit: int = MAX_HEADER_TEXT) -> str:
    """`value` on one line (control characters and line breaks become a space), trimmed."""
    return " ".join(_NOT_ONE_LINE.sub(" ", value).split())[:limit]


@dataclass(frozen=True, slots=True)
class Mail:
    """What a module asks to send; the platform adds From, Date and Message-ID."""

    to_address: str
    to_name: str
    subject: str
    text: str
    html: str


def sender_address(email_from: str) -> Address:
    name, address = parseaddr(email_from)
    return Address(display_name=header_text(name), addr_spec=address)


def build_message(mail: Mail, email_from: str) -> EmailMessage:
    sender = sender_address(email_from)
    message = EmailMessage(policy=policy.SMTP)
    message["Subject"] = header_text(mail.subject, 300)
    message["From"] = sender
    message["To"] = Address(display_name=header_text(mail.to_name), addr_spec=mail.to_address)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.domain or "localhost")
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


def seal_message(settings: Settings, message: EmailMessage) -> str:
    """The message as sent (ASCII: `policy.SMTP` encodes what is not), sealed at rest."""
    return _sealer(settings).seal(message.as_string())


def open_message(settings: Settings, sealed: str) -> EmailMessage:
    parsed = message_from_string(_sealer(settings).open(sealed), policy=policy.SMTP)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _sealer(settings: Settings) -> Sealer:
    return Sealer(settings.secret_key.get_secret_value(), SEAL_PURPOSE)
