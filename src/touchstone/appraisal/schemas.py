"""Request and response bodies of the appraisal API.

Weights are Decimals with at most 3 decimals (what a balance shows) and money with 2, so
no float ever reaches a valuation; impossible weights are refused here with a 422.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from touchstone.appraisal.models import AppraisalStatus
from touchstone.appraisal.valuation import TESTED_KARATS
from touchstone.core.schemas import (
    Count,
    Flag,
    InputModel,
    Name,
    NonBlank,
    OutputModel,
    PlainText,
    Trimmed,
)

ItemType = Literal["ring", "chain", "bangle", "coin", "necklace", "earring", "other"]
TestedKarat = Literal["18K", "22K", "24K"]
KaratResult = Literal["18K", "22K", "24K", "inconclusive"]
IdDocumentType = Literal["aadhaar", "pan", "passport", "voter_id", "driving_licence", "other"]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{8,20}$"), Trimmed]
IdNumber = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 -]{4,30}$"), Trimmed]
Grams = Annotated[Decimal, Field(ge=0, le=100_000, max_digits=10, decimal_places=3)]
Rupees = Annotated[Decimal, Field(gt=0, le=10_000_000_000, max_digits=14, decimal_places=2)]
Comment = Annotated[str, StringConstraints(min_length=1, max_length=2000), NonBlank]
Reason = Annotated[str, StringConstraints(min_length=5, max_length=1000), NonBlank]


# --- settings, devices, rates ------------------------------------------------------------


class SettingsOut(OutputModel):
    detector_engine: str
    require_registered_device: bool
    lending_policy: dict[str, Any]
    reference_karats: list[str]
    """The reference needles on the stone (`PUT /appraisal-settings/reference-needles`)."""


class SettingsUpdate(InputModel):
    detector_engine: Literal["classical", "onnx-yolo"] | None = None
    require_registered_device: Flag | None = None
    lending_policy: dict[str, Any] | None = None
    """Keys of `LendingPolicy` (validated by it); left-out keys keep their defaults."""


class ReferenceNeedles(InputModel):
    """The karats of the touch needles an appraiser rubs on the stone before the ornament.

    Listed in ascending karat, the order they are rubbed (the ornament last): the reading
    tells the streaks apart by when they were rubbed. Empty: no needles, an absolute reading.
    """

    karats: list[TestedKarat] = Field(max_length=len(TESTED_KARATS))

    @field_validator("karats")
    @classmethod
    def _ascending_without_repeats(cls, karats: list[str]) -> list[str]:
        if len(set(karats)) != len(karats):
            raise ValueError("a karat is listed twice: each needle is rubbed once")
        if karats != sorted(karats, key=TESTED_KARATS.index):
            raise ValueError(
                "list the needles in ascending karat (e.g. 18K, 22K, 24K), the order they "
                "are rubbed on the stone"
            )
        return karats


class ReferenceNeedlesOut(OutputModel):
    karats: list[str]
    method: str
    """How a test started now reads its karat: `absolute`, or `reference needles 18K, 22K`."""


class DeviceCreate(InputModel):
    name: Name
    appraiser_id: uuid.UUID


class DeviceOut(OutputModel):
    id: uuid.UUID
    name: str
    appraiser_id: uuid.UUID
    is_active: bool
    created_at: datetime
    last_used_at: datetime | None


class GoldRateCreate(InputModel):
    karat: TestedKarat
    rate_per_g: Rupees
    effective_from: AwareDatetime | None = None
    """Defaults to now; a future time schedules the rate."""


class GoldRateOut(OutputModel):
    id: uuid.UUID
    karat: str
    rate_per_g: Decimal
    effective_from: datetime
    set_by: uuid.UUID | None


# --- customers ---------------------------------------------------------------------------


class AppraisalQuery(BaseModel):
    """`GET /appraisals`: its filter, besides the page."""

    status: AppraisalStatus | None = None


class CustomerSearch(BaseModel):
    """`GET /customers`: part of the name, the full phone number, or its last digits."""

    name: PlainText | None = Field(None, max_length=200)
    phone: PlainText | None = Field(None, max_length=30)


class CustomerCreate(InputModel):
    full_name: Name
    phone: Phone
    id_document_type: IdDocumentType
    id_number: IdNumber


class CustomerOut(OutputModel):
    """Never the phone or ID number in full."""

    id: uuid.UUID
    full_name: str
    phone_masked: str
    id_document_type: str
    id_number_masked: str
    has_photo: bool
    created_at: datetime


# --- appraisals and items ----------------------------------------------------------------


class AppraisalCreate(InputModel):
    customer_id: uuid.UUID
    branch_id: uuid.UUID | None = None
    """Org-wide users name the branch; branch-bound users always work in their own."""
    requested_amount: Rupees | None = None


class ItemCreate(InputModel):
    item_type: ItemType
    description: Annotated[str, StringConstraints(max_length=500), Trimmed] = ""
    count: Annotated[Count, Field(ge=1, le=1000)] = 1
    gross_weight_g: Annotated[Grams, Field(gt=0)]
    deduction_g: Grams = Decimal(0)

    @model_validator(mode="after")
    def _deduction_below_gross(self) -> ItemCreate:
        if self.deduction_g >= self.gross_weight_g:
            raise ValueError("deduction_g must be less than gross_weight_g")
        return self


class ItemOut(OutputModel):
    id: uuid.UUID
    item_type: str
    description: str
    count: int
    gross_weight_g: Decimal
    deduction_g: Decimal
    net_weight_g: Decimal
    karat: str | None
    purity_confidence: Decimal | None
    classification: dict[str, Any] | None
    created_at: datetime


class AppraisalOut(OutputModel):
    id: uuid.UUID
    branch_id: uuid.UUID
    appraiser_id: uuid.UUID
    customer_id: uuid.UUID
    status: str
    requested_amount: Decimal | None
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    decision_comment: str | None
    created_at: datetime
    updated_at: datetime


class AppraisalDetail(AppraisalOut):
    items: list[ItemOut]
    valuation: dict[str, Any] | None


class ValuationRequest(InputModel):
    requested_amount: Rupees | None = None


class Decision(InputModel):
    comment: Comment


class OverrideCreate(InputModel):
    karat: KaratResult
    reason: Reason


class OverrideOut(OutputModel):
    id: uuid.UUID
    item_id: uuid.UUID
    purity_test_id: uuid.UUID
    previous_karat: str | None
    karat: str
    reason: str
    actor_id: uuid.UUID
    created_at: datetime


# --- purity tests ------------------------------------------------------------------------


class PurityTestOut(OutputModel):
    """The seed's `purity_test_details`."""

    id: uuid.UUID
    appraisal_id: uuid.UUID
    item_id: uuid.UUID
    status: str
    stage: str
    engine: str
    transport: str | None
    device_id: uuid.UUID | None
    karat: str | None
    confidence: Decimal | None
    reason: str | None
    stage_timings: dict[str, Any]
    milestones: dict[str, Any]
    detector_versions: dict[str, Any]
    reference_karats: list[str]
    """The org's reference needles when the test was created (ascending); empty: none."""
    method: str | None
    """How the karat was read: `absolute`, or `reference needles 18K, 22K`."""
    reaction: dict[str, float] | None
    """What the acid left of each streak (0 to 1): `ornament`, and each needle's karat."""
    frames_received: int
    frames_processed: int
    frames_dropped: int
    resumable: bool
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime


class PurityTestCreated(PurityTestOut):
    websocket_url: str
    webrtc_offer_url: str
    ice_servers: list[dict[str, Any]]


class WebRtcOffer(InputModel):
    sdp: Annotated[str, StringConstraints(min_length=10, max_length=20_000)]
    type: Literal["offer"]


class WebRtcAnswer(OutputModel):
    sdp: str
    type: Literal["answer"]
    ice_servers: list[dict[str, Any]]


# --- evidence, audit chain, certificates ---------------------------------------------------


class EvidenceOut(OutputModel):
    id: uuid.UUID
    item_id: uuid.UUID | None
    purity_test_id: uuid.UUID | None
    kind: str
    sha256: str
    size: int
    content_type: str
    created_at: datetime
    download_url: str


class ChainEventOut(OutputModel):
    seq: int
    occurred_at: datetime
    actor_type: str
    actor_id: uuid.UUID | None
    action: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class ChainVerification(OutputModel):
    valid: bool
    events: int
    first_broken_seq: int | None
    head_hash: str | None


class CertificateOut(OutputModel):
    number: str
    digest: str
    sha256: str
    issued_at: datetime
    verify_url: str
    download_url: str
