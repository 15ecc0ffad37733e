"""The transactional outbox: events are rows written in the same transaction as the change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.db import Base, TenantMixin, utcnow

_TZ = DateTime(timezone=True)


class OutboxEvent(TenantMixin, Base):
    """`id` orders writes; `seq` is the delivery order the relay assigns after commit.

    An event committed late gets a later `seq` than one committed earlier, so a stream that
    resumes "after seq N" never skips an event that was still in flight when N was sent.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_unrelayed", "id", postgresql_where="seq IS NULL"),
        Index("ix_outbox_events_org_seq", "org_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    topic: Mapped[str] = mapped_column(String(80))
    aggregate_type: Mapped[str] = mapped_column(String(60))
    aggregate_id: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    relayed_at: Mapped[datetime | None] = mapped_column(_TZ)
