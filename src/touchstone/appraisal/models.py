"""Tables of the appraisal module: tenant tables carry org_id and get row-level security.

Users and branches belong to the identity module, so `appraiser_id`, `branch_id` and the
like are plain UUIDs without foreign keys (as the jobs and webhooks tables do): a module's
tables never reach into another module's.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from touchstone.core.db import Base, IdMixin, TenantMixin, TimestampMixin, utcnow

_TZ = DateTime(timezone=True)
_GRAMS = Numeric(10, 3)
_MONEY = Numeric(14, 2)


class AppraisalStatus(StrEnum):
    DRAFT = "draft"
    ITEMS_ADDED = "items_added"
    PURITY_IN_PROGRESS = "purity_in_progress"
    PURITY_COMPLETED = "purity_completed"
    VALUED = "valued"
    APPROVED = "approved"
    REJECTED = "rejected"


class PurityTestStatus(StrEnum):
    CREATED = "created"
    IN_PROGRESS = "in_progress"
    INTERRUPTED = "interrupted"
    """The client went away mid-test; the snapshot lets the test resume where it stopped."""
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    """Replaced by a newer test of the same item before it completed."""

    @property
    def open(self) -> bool:
        return self in (
            PurityTestStatus.CREATED,
            PurityTestStatus.IN_PROGRESS,
            PurityTestStatus.INTERRUPTED,
        )


class EvidenceKind(StrEnum):
    ITEM_PHOTO = "item_photo"
    RUBBING_CONFIRMED = "rubbing_confirmed"
    ACID_APPLIED = "acid_applied"
    RESULT = "result"


class AppraisalSettings(IdMixin, TenantMixin, Base):
    """One row per org: the detector engine, the device rule and the lending policy."""

    __tablename__ = "appraisal_settings"
    __table_args__ = (UniqueConstraint("org_id"),)

    detector_engine: Mapped[str] = mapped_column(String(40), default="classical")
    require_registered_device: Mapped[bool] = mapped_column(Boolean, default=False)
    lending_policy: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    """`LendingPolicy.to_mapping()`; empty = the documented defaults."""
    reference_karats: Mapped[list[str]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    """Karats of the touch needles rubbed on the stone beside the ornament, ascending (the
    order they are rubbed); empty = the karat is read absolutely."""
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow, server_default=func.now())


class Device(IdMixin, TenantMixin, TimestampMixin, Base):
    """A camera/phone registered by an org admin and bound to one appraiser."""

    __tablename__ = "appraisal_devices"

    name: Mapped[str] = mapped_column(String(120))
    appraiser_id: Mapped[uuid.UUID] = mapped_column(index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    last_used_at: Mapped[datetime | None] = mapped_column(_TZ)


class Customer(IdMixin, TenantMixin, TimestampMixin, Base):
    """A borrower. Phone and ID number are sealed; only masked forms and keyed hashes are
    readable, so a database dump or a log line never shows them."""

    __tablename__ = "appraisal_customers"
    __table_args__ = (Index("ix_appraisal_customers_org_phone", "org_id", "phone_hash"),)

    full_name: Mapped[str] = mapped_column(String(200))
    phone_sealed: Mapped[str] = mapped_column(Text)
    phone_hash: Mapped[str] = mapped_column(String(64))
    """HMAC of the phone's digits: exact search without decrypting every row."""
    phone_last4: Mapped[str] = mapped_column(String(4), index=True)
    id_document_type: Mapped[str] = mapped_column(String(40))
    id_number_sealed: Mapped[str] = mapped_column(Text)
    id_number_masked: Mapped[str] = mapped_column(String(80))
    photo_key: Mapped[str | None] = mapped_column(String(200))
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[uuid.UUID | None]


class Appraisal(IdMixin, TenantMixin, TimestampMixin, Base):
    """One visit of a customer with ornaments to pledge (the seed's "overall session")."""

    __tablename__ = "appraisals"
    __table_args__ = (
        Index("ix_appraisals_org_branch_created", "org_id", "branch_id", "created_at"),
    )

    branch_id: Mapped[uuid.UUID]
    appraiser_id: Mapped[uuid.UUID]
    appraiser_name: Mapped[str] = mapped_column(String(200))
    """As the appraiser was named when appraising (the certificate prints it)."""
    customer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appraisal_customers.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(String(30), default=AppraisalStatus.DRAFT)
    requested_amount: Mapped[Decimal | None] = mapped_column(_MONEY)
    valuation: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The last `assess()` outcome as JSON, with the gold rates and policy it used."""
    decided_by: Mapped[uuid.UUID | None]
    decided_by_name: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(_TZ)
    decision_comment: Mapped[str | None] = mapped_column(String(2000))
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow, server_default=func.now())


class Item(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "appraisal_items"

    appraisal_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appraisals.id", ondelete="CASCADE"), index=True
    )
    item_type: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    count: Mapped[int] = mapped_column(Integer)
    gross_weight_g: Mapped[Decimal] = mapped_column(_GRAMS)
    deduction_g: Mapped[Decimal] = mapped_column(_GRAMS)
    net_weight_g: Mapped[Decimal] = mapped_column(_GRAMS)
    karat: Mapped[str | None] = mapped_column(String(20))
    """The purity that counts: the completed test's reading, or an audited override."""
    purity_confidence: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    classification: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class PurityTest(IdMixin, TenantMixin, TimestampMixin, Base):
    """The seed's `purity_test_details`: one live touchstone test of one item."""

    __tablename__ = "purity_tests"

    appraisal_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appraisals.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appraisal_items.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default=PurityTestStatus.CREATED)
    engine: Mapped[str] = mapped_column(String(40))
    device_id: Mapped[uuid.UUID | None]
    created_by: Mapped[uuid.UUID | None]
    transport: Mapped[str | None] = mapped_column(String(20))
    karat: Mapped[str | None] = mapped_column(String(20))
    confidence: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    reason: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(20), default="rubbing")
    stage_timings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    milestones: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    detector_versions: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    reference_karats: Mapped[list[str]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    """The org's reference needles when the test was created: a setting changed mid-test
    does not change what the stone holds."""
    method: Mapped[str | None] = mapped_column(String(80))
    """How the karat was read (`PurityResult.method`): absolute, or against the needles."""
    reaction: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """What the acid left of each streak (`PurityResult.reaction`), for the certificate."""
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """`PurityPipeline.snapshot()` when the test stopped early, to resume from."""
    frames_received: Mapped[int] = mapped_column(Integer, default=0)
    frames_processed: Mapped[int] = mapped_column(Integer, default=0)
    frames_dropped: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(_TZ)
    completed_at: Mapped[datetime | None] = mapped_column(_TZ)


class PurityOverride(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "purity_overrides"

    item_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appraisal_items.id", ondelete="CASCADE"), index=True
    )
    purity_test_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("purity_tests.id"))
    previous_karat: Mapped[str | None] = mapped_column(String(20))
    karat: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(1000))
    actor_id: Mapped[uuid.UUID]


class Evidence(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "appraisal_evidence"

    appraisal_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appraisals.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("appraisal_items.id", ondelete="CASCADE")
    )
    purity_test_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("purity_tests.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(30))
    storage_key: Mapped[str] = mapped_column(String(200), index=True)
    """Indexed: `/files/{key}` asks which appraisal (so which branch) a key belongs to."""
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))


class GoldRate(IdMixin, TenantMixin, TimestampMixin, Base):
    """Rupees per gram of one karat from `effective_from` on; rows are never changed, so
    the history is the table."""

    __tablename__ = "gold_rates"
    __table_args__ = (
        Index("ix_gold_rates_org_karat_effective", "org_id", "karat", "effective_from"),
    )

    karat: Mapped[str] = mapped_column(String(10))
    rate_per_g: Mapped[Decimal] = mapped_column(_MONEY)
    effective_from: Mapped[datetime] = mapped_column(_TZ)
    set_by: Mapped[uuid.UUID | None]


class ChainEvent(IdMixin, TenantMixin, Base):
    """An appraisal's tamper-evident trail: `hash` = SHA-256(prev_hash + canonical event).

    Append-only for the runtime role; changing or removing a row breaks every later hash.
    """

    __tablename__ = "appraisal_chain_events"
    __table_args__ = (UniqueConstraint("appraisal_id", "seq"),)

    appraisal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("appraisals.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(_TZ)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(80))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Certificate(IdMixin, TenantMixin, Base):
    """An issued certificate. `data` is what it shows (masked), so the public verification
    page can be rebuilt and its digest checked without the live tables."""

    __tablename__ = "appraisal_certificates"

    appraisal_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appraisals.id", ondelete="CASCADE"), unique=True
    )
    number: Mapped[str] = mapped_column(String(40), unique=True)
    digest: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    issued_at: Mapped[datetime] = mapped_column(_TZ)
    issued_by: Mapped[uuid.UUID]
