"""Delivering a composed email: the `EmailEngine` seam and its SMTP implementation.

SMTP everywhere, so development and tests speak the same protocol as production: in
development the platform's local server (`local_server`) answers, in tests an aiosmtpd
server the tests start. What an answer means for the job that sends:

- 2xx: delivered (accepted by the server).
- 4xx, a refused or dropped connection, a timeout, a TLS or sign-in problem: `EmailDeferred`
  (HTTP-like status 503), so the job tries again later with backoff.
- 5xx to the message (sender, recipient or content refused): `EmailRefused` (422): trying
  again cannot change the answer, so the job ends at once with the server's reason.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Protocol

import structlog

from touchstone.core.config import Settings
from touchstone.core.email.local_server import development_server_port
from touchstone.core.email.message import sender_address
from touchstone.core.errors import AppError

LOCALHOST = "127.0.0.1"
log = structlog.get_logger("touchstone.email")
AUTHENTICATION_CODES = frozenset({530, 534, 535, 538})
"""5xx answers about our own credentials: the server's configuration, not the message, is at
fault, so they are worth another attempt once an operator has fixed it."""


class EmailDeferred(AppError):
    """Not delivered this time; another attempt may succeed."""

    status, code, title = 503, "email_deferred", "The email could not be sent yet"


class EmailRefused(AppError):
    """The server refused the message for good (a 5xx reply)."""

    status, code, title = 422, "email_refused", "The mail server refused the email"


class EmailNotConfigured(AppError):
    """No SMTP server is set (outside development): trying again cannot help."""

    status, code, title = 424, "email_not_configured", "Email is not configured"

    def __init__(self) -> None:
        super().__init__("Set SMTP_HOST (and its SMTP_* settings) to send email")


class EmailEngine(Protocol):
    async def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        """Deliver `message` to `recipients` (the envelope: headers never add anyone);
        raise `EmailDeferred` or `EmailRefused` when it is not accepted."""
        ...


class SmtpEngine:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 15.0,
        envelope_from: str,
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.timeout = timeout
        self.envelope_from = envelope_from

    async def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        # smtplib blocks; a worker thread keeps the event loop free while the server answers.
        await asyncio.to_thread(self._send, message, list(recipients))

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def _send(self, message: EmailMessage, recipients: list[str]) -> None:
        try:
            with self._connect() as smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message, from_addr=self.envelope_from, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise _answer(code, reply) from None
        except smtplib.SMTPResponseException as exc:
            raise _answer(exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise EmailDeferred(f"{self.host}:{self.port}: {type(exc).__name__}: {exc}") from None


def _answer(code: int, reply: bytes | str) -> AppError:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    detail = f"{code} {' '.join(text.split())}"[:400]
    if 500 <= code < 600 and code not in AUTHENTICATION_CODES:
        return EmailRefused(detail)
    return EmailDeferred(detail)


class UnconfiguredEngine:
    async def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        raise EmailNotConfigured()


class LocalServerAbsent:
    """Development before the API has started its mail server: later, then."""

    async def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        raise EmailDeferred("The development mail server is not running: start the API")


def email_engine(settings: Settings) -> EmailEngine:
    """The engine the settings describe (a seam: tests may put another one here)."""
    envelope_from = sender_address(settings.email_from).addr_spec
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SmtpEngine(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=password,
            timeout=settings.smtp_timeout_seconds,
            envelope_from=envelope_from,
        )
    if settings.dev_mail_server:
        port = settings.dev_mail_port or development_server_port(settings.mail_dir)
        if port is None:
            return LocalServerAbsent()
        return SmtpEngine(
            LOCALHOST,
            port,
            security="none",
            timeout=settings.smtp_timeout_seconds,
            envelope_from=envelope_from,
        )
    return UnconfiguredEngine()


def warn_if_unconfigured(settings: Settings) -> None:
    """Production starts without SMTP (a deployment may not need email), but says so."""
    if settings.is_production and not settings.smtp_host:
        log.warning(
            "email_not_configured",
            detail="SMTP_HOST is unset: invitations and password resets cannot be emailed",
        )
