"""Outgoing email: compose, queue as a job, deliver through an engine; a local server in dev.

    from touchstone.core.email import Mail, queue_email

    mail = Mail(to_address=user.email, to_name=user.full_name, subject=..., text=..., html=...)
    await queue_email(session, org_id, mail, kind="invitation")   # a job, in this transaction

The message is sealed at rest until it is sent (it may carry a one-time link), then only
its envelope stays: who, what kind, when, and why it failed if it did.
"""

from touchstone.core.email.engine import (
    EmailDeferred,
    EmailEngine,
    EmailNotConfigured,
    EmailRefused,
    email_engine,
)
from touchstone.core.email.message import Mail, build_message, header_text
from touchstone.core.email.outbox import queue_email
from touchstone.core.email.templates import EmailTemplates

__all__ = [
    "EmailDeferred",
    "EmailEngine",
    "EmailNotConfigured",
    "EmailRefused",
    "EmailTemplates",
    "Mail",
    "build_message",
    "email_engine",
    "header_text",
    "queue_email",
]
