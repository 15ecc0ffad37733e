"""The outbox of emails, per tenant: what was sent to whom, and why one was not."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.db import Base, IdMixin, TenantMixin, TimestampMixin

MAX_ERROR_LENGTH = 500


class EmailStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class OutboundEmail(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "outbound_emails"

    kind: Mapped[str] = mapped_column(String(40))
    """What it is for (`invitation`, `password_reset`): the module that queued it says."""
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default=EmailStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sealed_message: Mapped[str | None] = mapped_column(Text)
    """The whole message, sealed (it may hold a one-time link); erased once the email is sent
    or has failed for good."""
    job_id: Mapped[uuid.UUID | None]
    last_error: Mapped[str | None] = mapped_column(String(MAX_ERROR_LENGTH))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
