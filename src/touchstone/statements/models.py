"""Tables of the statements module: tenant tables carry org_id and get row-level security.

A batch holds statements (one uploaded PDF each); a statement holds its transactions. Usage
events meter processed pages for quotas and billing; the subscription says which plan an
org is on. Money is `numeric(18, 2)`, signed: credits positive, debits negative.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.db import Base, IdMixin, TenantMixin, TimestampMixin

MONEY = Numeric(18, 2)


class BatchStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"  # every statement reached a final state (some may need a password)
    COMPLETED_WITH_ERRORS = "completed_with_errors"  # finished, but some statements failed
    FAILED = "failed"  # its job ended without finishing it; `error_code` says why


class StatementState(StrEnum):
    QUEUED = "queued"
    NEEDS_PASSWORD = "needs_password"  # noqa: S105 (a state, not a password)
    PROCESSING = "processing"
    VERIFIED = "verified"
    REVIEW = "review"
    FAILED = "failed"


COMPLETED = frozenset({BatchStatus.DONE, BatchStatus.COMPLETED_WITH_ERRORS})
FINAL_STATES = frozenset({StatementState.VERIFIED, StatementState.REVIEW, StatementState.FAILED})


class Batch(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "statement_batches"

    label: Mapped[str] = mapped_column(String(200), server_default="")
    status: Mapped[str] = mapped_column(String(32), server_default=BatchStatus.QUEUED.value)
    created_by: Mapped[uuid.UUID | None]
    job_id: Mapped[uuid.UUID | None]
    report_key: Mapped[str | None] = mapped_column(String(300))
    report_generated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """`GET /batches/{id}/analysis` as served, stored with each build of the workbook."""
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_detail: Mapped[str | None] = mapped_column(String(500))


class Statement(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "statements"
    __table_args__ = (Index("ix_statements_org_id_sha256", "org_id", "sha256"),)

    batch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("statement_batches.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    """Order within the batch, as uploaded."""
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    pages: Mapped[int] = mapped_column(Integer, server_default="0")
    password_protected: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    password_sealed: Mapped[str | None] = mapped_column(Text)
    """The supplied password, encrypted (core.crypto); kept so a reprocess needs no re-entry."""
    status: Mapped[str] = mapped_column(String(20), server_default=StatementState.QUEUED.value)
    duplicate_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("statements.id", ondelete="SET NULL")
    )
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_detail: Mapped[str | None] = mapped_column(String(500))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    page_reports: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    issues: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    signals: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    """`domain.DocumentSignals` of the last reading; empty before one."""
    pages_done: Mapped[int] = mapped_column(Integer, server_default="0")
    processed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class StatementTransaction(IdMixin, TenantMixin, Base):
    __tablename__ = "statement_transactions"
    __table_args__ = (
        UniqueConstraint("statement_id", "row"),
        Index("ix_statement_transactions_batch_date", "batch_id", "txn_date"),
    )

    batch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("statement_batches.id", ondelete="CASCADE")
    )
    statement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("statements.id", ondelete="CASCADE"))
    row: Mapped[int]
    page: Mapped[int]
    txn_date: Mapped[dt.date] = mapped_column(Date)
    description: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    balance: Mapped[Decimal | None] = mapped_column(MONEY)
    category: Mapped[str] = mapped_column(String(60))
    counterparty: Mapped[str | None] = mapped_column(String(200))
    recurring: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    rule: Mapped[str | None] = mapped_column(String(100))
    overridden: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class CategoryRule(IdMixin, TenantMixin, TimestampMixin, Base):
    """An org's own categorisation rule; applied before the default rule set."""

    __tablename__ = "statement_category_rules"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """`categorise.Rule.to_mapping()`; validated by `Rule.from_mapping` on the way in."""


class UsageEvent(IdMixin, TenantMixin, Base):
    """Pages processed, per statement: the unit of quotas and of billing."""

    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("statement_id", "metric"),  # a retried job meters once
        Index("ix_usage_events_org_id_occurred_at", "org_id", "occurred_at"),
    )

    metric: Mapped[str] = mapped_column(String(40))
    quantity: Mapped[int]
    batch_id: Mapped[uuid.UUID | None]
    statement_id: Mapped[uuid.UUID | None]
    occurred_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    reported_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """When the billing engine accepted it (None while billing is disabled or pending)."""


NO_SUBSCRIPTION = "none"
"""A subscription row's status before the provider reported one: the plan does not apply."""


class Subscription(IdMixin, TenantMixin, Base):
    """The org's plan and the provider customer it is billed as.

    Only the platform writes here: the provider's signed webhooks (plan, status), a platform
    administrator (audited), or the platform creating the org's customer at the provider. A
    tenant never names a customer id or a plan; a plan counts only while its status is
    `active` or `trialing`.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("org_id"),)

    plan: Mapped[str] = mapped_column(String(40), server_default="free")
    status: Mapped[str] = mapped_column(String(40), server_default=NO_SUBSCRIPTION)
    external_customer_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    external_subscription_id: Mapped[str | None] = mapped_column(String(100))
    current_period_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class BillingEvent(TenantMixin, Base):
    """A provider webhook already applied: the same event id is never applied twice."""

    __tablename__ = "billing_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
