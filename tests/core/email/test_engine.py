"""The SMTP engine against real SMTP servers: what each answer means for the sending job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.mail import MailServer, RecordingHandler, html_of, text_of
from touchstone.core.config import Settings
from touchstone.core.email import (
    EmailDeferred,
    EmailNotConfigured,
    EmailRefused,
    Mail,
    build_message,
    email_engine,
    header_text,
)
from touchstone.core.email.engine import LocalServerAbsent, SmtpEngine
from touchstone.core.email.local_server import (
    LocalMailServer,
    free_port,
    start_development_server,
)
from touchstone.core.jobs import is_permanent


def _mail(to: str, name: str = "Asha", subject: str = "Hello") -> EmailMessage:
    mail = Mail(to, name, subject, "plain text body\n", "<p>html body</p>\n")
    return build_message(mail, "Touchstone <touchstone@localhost>")


def _engine(server: MailServer, **options: Any) -> SmtpEngine:
    return SmtpEngine(
        server.host,
        server.port,
        security="none",
        timeout=5,
        envelope_from="bounces@localhost",
        **options,
    )


def _address() -> str:
    return f"to-{uuid.uuid4().hex[:8]}@example.com"


async def test_a_message_is_delivered_to_the_envelope_recipients_only(
    smtp_server: MailServer,
) -> None:
    to = _address()
    message = _mail(to)
    message["Cc"] = "someone-else@example.com"  # headers never add recipients
    await _engine(smtp_server).send(message, [to])
    (delivered,) = smtp_server.to(to)
    assert (delivered.mail_from, delivered.recipients) == ("bounces@localhost", [to])
    assert text_of(delivered.message).splitlines() == ["plain text body"]
    assert html_of(delivered.message).splitlines() == ["<p>html body</p>"]
    assert smtp_server.to("someone-else@example.com") == []


@pytest.mark.parametrize(
    ("reply", "error", "permanent"),
    [
        ("451 4.3.0 Try again later", EmailDeferred, False),
        ("452 4.2.2 Mailbox full", EmailDeferred, False),
        ("554 5.7.1 Message rejected as spam", EmailRefused, True),
        ("535 5.7.8 Authentication credentials invalid", EmailDeferred, False),
    ],
)
async def test_replies_to_the_message_map_to_retry_or_refusal(
    smtp_server: MailServer, reply: str, error: type[Exception], permanent: bool
) -> None:
    to = _address()
    smtp_server.defer_once(to, reply)
    with pytest.raises(error) as raised:
        await _engine(smtp_server).send(_mail(to), [to])
    assert reply.split(" ", 1)[0] in str(raised.value)
    assert is_permanent(raised.value) is permanent
    assert smtp_server.to(to) == []


async def test_a_refused_recipient_is_permanent(smtp_server: MailServer) -> None:
    to = _address()
    smtp_server.refuse(to, "550 5.1.1 User unknown")
    with pytest.raises(EmailRefused, match=r"550 5\.1\.1 User unknown"):
        await _engine(smtp_server).send(_mail(to), [to])


async def test_no_server_listening_is_worth_another_attempt() -> None:
    engine = SmtpEngine(
        "127.0.0.1", free_port("127.0.0.1"), security="none", timeout=5, envelope_from="a@b.c"
    )
    with pytest.raises(EmailDeferred, match="ConnectionRefusedError") as raised:
        await engine.send(_mail("x@example.com"), ["x@example.com"])
    assert not is_permanent(raised.value)


async def test_starttls_is_required_when_configured(smtp_server: MailServer) -> None:
    """SMTP_SECURITY=starttls never falls back to plain text with a server that lacks it."""
    to = _address()
    with pytest.raises(EmailDeferred, match="STARTTLS"):
        await (
            _engine(smtp_server, username=None)
            .__class__(
                smtp_server.host, smtp_server.port, security="starttls", envelope_from="a@b.c"
            )
            .send(_mail(to), [to])
        )
    assert smtp_server.to(to) == []


@pytest.fixture
def auth_server() -> Iterator[MailServer]:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"mailer",
            b"s3cret",
        )
        return AuthResult(success=good)

    server = MailServer.__new__(MailServer)
    server.handler = RecordingHandler()
    server.server = LocalMailServer(server.handler)
    # aiosmtpd refuses AUTH without TLS unless told otherwise; the client side is the same.
    server.server.controller = type(server.server.controller)(
        server.handler,
        hostname=server.server.host,
        port=server.server.port,
        authenticator=authenticate,
        auth_require_tls=False,
        ready_timeout=10,
    )
    server.host, server.port = server.server.host, server.server.port
    server.server.start()
    yield server
    server.server.stop()


async def test_credentials_are_presented(auth_server: MailServer) -> None:
    to = _address()
    await _engine(auth_server, username="mailer", password="s3cret").send(_mail(to), [to])
    assert len(auth_server.to(to)) == 1
    other = _address()
    # Refused credentials are our configuration's fault, not the message's: retried. (After
    # a 535 smtplib tries the next mechanism, which this server leaves unanswered.)
    wrong = _engine(auth_server, username="mailer", password="wrong")
    wrong.timeout = 1
    with pytest.raises(EmailDeferred):
        await wrong.send(_mail(other), [other])
    assert auth_server.to(other) == []


def test_settings_choose_the_engine(settings: Settings, tmp_path: Path) -> None:
    assert isinstance(email_engine(settings), SmtpEngine)
    development = settings.model_copy(
        update={"environment": "development", "smtp_host": None, "dev_mail_dir": tmp_path}
    )
    assert isinstance(email_engine(development), LocalServerAbsent)  # the API is not up yet
    server = start_development_server(tmp_path, None)
    assert server is not None
    try:
        local = email_engine(development)
        assert isinstance(local, SmtpEngine)
        assert (local.host, local.port, local.security) == ("127.0.0.1", server.port, "none")
    finally:
        server.stop()
    fixed = email_engine(development.model_copy(update={"dev_mail_port": 2525}))
    assert isinstance(fixed, SmtpEngine)
    assert fixed.port == 2525


async def test_without_a_server_outside_development_every_email_fails_saying_so(
    settings: Settings,
) -> None:
    engine = email_engine(settings.model_copy(update={"smtp_host": None}))
    with pytest.raises(EmailNotConfigured) as raised:
        await engine.send(_mail("x@example.com"), ["x@example.com"])
    assert is_permanent(raised.value)


def test_header_values_stay_on_one_line() -> None:
    assert header_text("a\r\nBcc: b@c.d\u2028X: y\x00z") == "a Bcc: b@c.d X: y z"
    message = _mail("x@example.com", name="Eve\r\nBcc: spy@evil.example", subject="Hi\nX-A: 1")
    assert message.get_all("Bcc") is None
    assert message.get_all("X-A") is None
    assert message["To"].addresses[0].display_name == "Eve Bcc: spy@evil.example"
