"""Stored outcomes of requests sent with an Idempotency-Key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.db import Base, IdMixin, TenantMixin, TimestampMixin

_TZ = DateTime(timezone=True)


class IdempotencyRecord(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("org_id", "principal", "route", "key"),)

    principal: Mapped[str] = mapped_column(String(60))
    route: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    sealed_body: Mapped[str] = mapped_column(Text)
    """Encrypted: create responses can hold one-time secrets (API keys, invitations)."""
    headers: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    expires_at: Mapped[datetime] = mapped_column(_TZ, index=True)
