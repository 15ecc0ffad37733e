"""The audit trail: every state change writes one event in the same transaction.

It lives in core because every module, and core itself (job cancellation), records
changes; reading it is the identity module's `GET /audit-events`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import DateTime, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.auth import Principal
from touchstone.core.db import Base, IdMixin, TenantMixin, utcnow

_TZ = DateTime(timezone=True)


class AuditEvent(IdMixin, TenantMixin, Base):
    """Append-only: the runtime role has no UPDATE or DELETE on this table."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_org_occurred", "org_id", "occurred_at"),)

    occurred_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow, server_default=func.now())
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[uuid.UUID | None]
    branch_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(80))
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(80))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(128))


SYSTEM_ACTOR = "system"


async def record_audit(
    session: AsyncSession,
    actor: Principal | None,
    action: str,
    object_type: str,
    object_id: object | None,
    changes: dict[str, Any] | None = None,
    *,
    org_id: uuid.UUID | None = None,
) -> None:
    """Append an audit event to the current transaction (who, what, which object, why)."""
    values = audit_values(actor, action, object_type, object_id, changes, org_id=org_id)
    session.add(AuditEvent(**values))


def audit_values(
    actor: Principal | None,
    action: str,
    object_type: str,
    object_id: object | None,
    changes: Mapping[str, Any] | None = None,
    *,
    org_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """An audit event's columns, every one (`core.writes` inserts them as they are)."""
    return {
        "id": uuid.uuid4(),
        "org_id": org_id or (actor.org_id if actor else None),
        "occurred_at": utcnow(),
        "actor_type": actor.kind if actor else SYSTEM_ACTOR,
        "actor_id": actor.id if actor else None,
        "branch_id": actor.branch_id if actor else None,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id) if object_id is not None else None,
        "changes": dict(changes or {}),
        "request_id": structlog.contextvars.get_contextvars().get("request_id"),
    }
