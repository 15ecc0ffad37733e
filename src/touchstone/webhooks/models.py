"""Webhook tables: endpoints, one delivery per (event, endpoint), and every attempt made."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.db import Base, IdMixin, TenantMixin, TimestampMixin

_TZ = DateTime(timezone=True)
MAX_URL_LENGTH = 2048
MAX_ERROR_LENGTH = 500
MAX_RESPONSE_SNIPPET = 1024


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)


class WebhookEndpoint(IdMixin, TenantMixin, TimestampMixin, Base):
    """A receiver registered by an org admin. The signing secret is stored Fernet-encrypted."""

    __tablename__ = "webhook_endpoints"

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(MAX_URL_LENGTH))
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    topics: Mapped[list[str]] = mapped_column(ARRAY(String(80)), default=list, server_default="{}")
    """Topic filters like the live streams' (`appraisal.*` is a prefix); empty = every topic."""
    secret_encrypted: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_by: Mapped[uuid.UUID | None]
    """The user or API key that registered it (audited; no foreign key, like jobs)."""


class WebhookDelivery(IdMixin, TenantMixin, TimestampMixin, Base):
    """One event for one endpoint: the exact body to send, and where its sending stands."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),)

    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(index=True)
    """The outbox event's stable id: the same for every retry and every redelivery."""
    event_seq: Mapped[int] = mapped_column(BigInteger)
    topic: Mapped[str] = mapped_column(String(80))
    payload: Mapped[str] = mapped_column(Text)
    """The exact JSON body that is signed and sent (text, so its bytes never change)."""
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(MAX_ERROR_LENGTH))
    last_attempt_at: Mapped[datetime | None] = mapped_column(_TZ)
    next_attempt_at: Mapped[datetime | None] = mapped_column(_TZ)
    delivered_at: Mapped[datetime | None] = mapped_column(_TZ)
    redelivery_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="SET NULL")
    )


class WebhookDeliveryAttempt(IdMixin, TenantMixin, Base):
    """The log: one row per HTTP attempt, whatever its outcome."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(_TZ)
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(MAX_ERROR_LENGTH))
    response_body: Mapped[str | None] = mapped_column(String(MAX_RESPONSE_SNIPPET))
