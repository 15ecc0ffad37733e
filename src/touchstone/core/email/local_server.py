"""A real SMTP server in this process (aiosmtpd) that keeps what it receives in a Maildir.

Development runs one when no SMTP_HOST is set (see `main.create_app`), and the tests run
their own, so mail always travels over SMTP; `/dev/mail` shows the Maildir to the developer.
"""

from __future__ import annotations

import mailbox
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

log = structlog.get_logger("touchstone.email")
KEY = re.compile(r"^[A-Za-z0-9._,:=-]{1,200}$")
"""What a Maildir key looks like (no path separators)."""


class MaildirHandler(Mailbox):
    """aiosmtpd's Maildir handler; it adds the envelope (X-MailFrom, X-RcptTo, X-Peer)."""

    def __init__(self, mail_dir: Path) -> None:
        # Owner-only: the mails hold invitation and reset links.
        for folder in ("tmp", "new", "cur"):
            (mail_dir / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
        mail_dir.chmod(0o700)
        super().__init__(mail_dir)


class LocalMailServer:
    """Start and stop aiosmtpd in its own thread (so it serves whichever event loop sends)."""

    def __init__(self, handler: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        # aiosmtpd checks it is up by connecting to its port: it needs a real one, not 0.
        self.port = port or free_port(host)
        self.controller = Controller(handler, hostname=host, port=self.port, ready_timeout=10)

    def start(self) -> LocalMailServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class StoredMail:
    key: str
    received_at: datetime
    message: EmailMessage

    @property
    def recipients(self) -> list[str]:
        """The envelope's recipients (who really got it), not the To header."""
        return [r.strip() for r in str(self.message.get("X-RcptTo", "")).split(",") if r.strip()]

    @property
    def lower_recipients(self) -> list[str]:
        return [r.lower() for r in self.recipients]

    def part(self, subtype: str) -> str | None:
        body = self.message.get_body(preferencelist=(subtype,))
        return None if body is None else str(body.get_content())


class MailStore:
    """What the local server received, newest first."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        self.parser = BytesParser(policy=policy.default)

    def _maildir(self) -> mailbox.Maildir | None:
        if not (self.mail_dir / "cur").is_dir():
            return None
        return mailbox.Maildir(self.mail_dir, create=False)

    def _read(self, maildir: mailbox.Maildir, key: str) -> StoredMail:
        received = datetime.fromtimestamp(maildir.get_message(key).get_date(), UTC)
        message = self.parser.parsebytes(maildir.get_bytes(key))
        assert isinstance(message, EmailMessage)
        return StoredMail(key, received, message)

    def latest(self, limit: int = 200) -> Sequence[StoredMail]:
        maildir = self._maildir()
        if maildir is None:
            return []
        keys = sorted(maildir.iterkeys(), key=_delivered_at, reverse=True)[:limit]
        return [self._read(maildir, key) for key in keys]

    def get(self, key: str) -> StoredMail | None:
        maildir = self._maildir()
        if maildir is None or not KEY.match(key):
            return None
        try:
            return self._read(maildir, key)
        except KeyError:
            return None


def _delivered_at(key: str) -> tuple[int, int, str]:
    """Maildir keys start `<seconds>.M<microseconds>`: order without opening every file."""
    seconds, _, rest = key.partition(".")
    micros = rest[1:].split("P", 1)[0] if rest.startswith("M") else ""
    return (int(seconds) if seconds.isdigit() else 0, int(micros) if micros.isdigit() else 0, key)


ADDRESS_FILE = "smtp-port"
"""In the mail directory: the development server's port, for the workers that send to it
(Maildir readers ignore files beside its folders)."""


def start_development_server(mail_dir: Path, port: int | None) -> LocalMailServer | None:
    """The development server on 127.0.0.1 (`port`, or a free one), its port written into
    the mail directory; None if the port is taken (another process already listens there)."""
    try:
        server = LocalMailServer(MaildirHandler(mail_dir), port=port or 0).start()
    except OSError as exc:
        log.warning("dev_mail_server_not_started", port=port, error=str(exc))
        return None
    (mail_dir / ADDRESS_FILE).write_text(str(server.port))
    log.info("dev_mail_server_started", port=server.port, mail_dir=str(mail_dir))
    return server


def development_server_port(mail_dir: Path) -> int | None:
    """The port the development server of this mail directory listens on, if it started."""
    try:
        return int((mail_dir / ADDRESS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
