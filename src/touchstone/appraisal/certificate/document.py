"""What an appraisal certificate shows, and the digest that proves it was not changed.

Everything the certificate shows is first reduced to one canonical "shown" mapping of
plain strings (`shown_fields`); the digest, the PDF (`pdf.py`) and the verification page
(`page.py`) are all made from it, so a digest that matches proves the customer holds the
certificate the bank issued, and a change to any shown field changes the digest.

Personal numbers are masked before they reach that mapping: the certificate, the page and
the digest never carry a full phone or ID number (a SHA-256 over a 12-digit Aadhaar
number could be reversed by trying all 10^12 of them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from touchstone.appraisal.valuation import (
    ItemValuation,
    RuleCheck,
    format_inr,
    round_grams,
    round_money,
)

CERTIFICATE_FORMAT_VERSION: Final = 1
"""Part of the digest, so a future layout with other fields never collides with this one."""


@dataclass(frozen=True, slots=True)
class CertificateItem:
    """One line of the items table; ``confidence`` is the purity test's, from 0 to 1."""

    item_type: str
    count: int
    gross_weight_g: Decimal
    deduction_g: Decimal
    net_weight_g: Decimal
    karat: str | None
    confidence: Decimal | None
    value: Decimal

    @classmethod
    def from_valuation(cls, item: ItemValuation, confidence: Decimal | None) -> CertificateItem:
        return cls(
            item_type=item.item_type,
            count=item.count,
            gross_weight_g=item.gross_weight_g,
            deduction_g=item.deduction_g,
            net_weight_g=item.net_weight_g,
            karat=item.karat,
            confidence=confidence,
            value=item.value,
        )


@dataclass(frozen=True, slots=True)
class CertificateData:
    """What a certificate is made from; phone and ID number are given in full and masked here.

    ``issued_at`` must be timezone-aware: it is printed, digested and pinned as the PDF's
    creation date so that the same data always gives the same bytes. ``evidence`` holds
    (label, JPEG bytes) pairs; the digest covers each label and the SHA-256 of its bytes.
    """

    certificate_number: str
    issued_at: datetime
    bank_name: str
    branch_name: str
    customer_name: str
    customer_phone: str
    id_document_type: str
    id_document_number: str
    appraiser_name: str
    approver_name: str
    items: Sequence[CertificateItem]
    gold_rate_24k_per_g: Decimal
    total_gross_weight_g: Decimal
    total_net_weight_g: Decimal
    total_value: Decimal
    ltv_cap: Decimal
    eligible_max_loan: Decimal
    requested_amount: Decimal | None
    checks: Sequence[RuleCheck]
    evidence: Sequence[tuple[str, bytes]] = ()

    def __post_init__(self) -> None:
        if self.issued_at.utcoffset() is None:
            raise ValueError("issued_at must be timezone-aware")


def _mask_keeping_last_four(characters: str) -> str:
    shown = 4 if len(characters) >= 8 else 0
    return "X" * (len(characters) - shown) + characters[len(characters) - shown :]


def mask_phone(phone: str) -> str:
    """Only the last four digits, and only when there are enough digits to hide the rest."""
    return _mask_keeping_last_four("".join(ch for ch in phone if ch.isdigit()))


def mask_id_number(number: str) -> str:
    """Only the last four characters (as on a masked Aadhaar), never more."""
    return _mask_keeping_last_four("".join(ch for ch in number if ch.isalnum()).upper())


def _grams(value: Decimal) -> str:
    return str(round_grams(value))


def _money(value: Decimal) -> str:
    return str(round_money(value))


def _percent(fraction: Decimal) -> str:
    return str((fraction * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def shown_fields(data: CertificateData) -> dict[str, Any]:
    """Everything the certificate shows, as canonical strings (and booleans)."""
    return {
        "format": CERTIFICATE_FORMAT_VERSION,
        "certificate_number": data.certificate_number,
        "issued_at": data.issued_at.isoformat(),
        "bank": data.bank_name,
        "branch": data.branch_name,
        "customer": {
            "name": data.customer_name,
            "phone": mask_phone(data.customer_phone),
            "id_document_type": data.id_document_type,
            "id_document_number": mask_id_number(data.id_document_number),
        },
        "appraiser": data.appraiser_name,
        "approver": data.approver_name,
        "items": [
            {
                "type": item.item_type,
                "count": str(item.count),
                "gross_g": _grams(item.gross_weight_g),
                "deduction_g": _grams(item.deduction_g),
                "net_g": _grams(item.net_weight_g),
                "karat": item.karat or "untested",
                "confidence_pct": "" if item.confidence is None else _percent(item.confidence),
                "value": _money(item.value),
            }
            for item in data.items
        ],
        "valuation": {
            "gold_rate_24k_per_g": _money(data.gold_rate_24k_per_g),
            "total_gross_g": _grams(data.total_gross_weight_g),
            "total_net_g": _grams(data.total_net_weight_g),
            "total_value": _money(data.total_value),
            "ltv_cap_pct": _percent(data.ltv_cap),
            "eligible_max_loan": _money(data.eligible_max_loan),
            "requested_amount": (
                "" if data.requested_amount is None else _money(data.requested_amount)
            ),
        },
        "checks": [
            {"rule": check.rule, "passed": check.passed, "detail": check.detail}
            for check in data.checks
        ],
        "evidence": [
            {"label": label, "sha256": hashlib.sha256(jpeg).hexdigest()}
            for label, jpeg in data.evidence
        ],
    }


def certificate_digest(data: CertificateData) -> str:
    """SHA-256 (hex) of the canonical JSON of what the certificate shows."""
    canonical = json.dumps(
        shown_fields(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def party_rows(shown: Mapping[str, Any]) -> list[tuple[str, str]]:
    customer = shown["customer"]
    return [
        ("Customer", customer["name"]),
        ("Phone", customer["phone"]),
        ("ID document", f"{customer['id_document_type']} {customer['id_document_number']}"),
        ("Appraiser", shown["appraiser"]),
        ("Approved by", shown["approver"]),
    ]


def rupees(amount: str) -> str:
    return f"₹{format_inr(Decimal(amount))}"


def valuation_rows(shown: Mapping[str, Any]) -> list[tuple[str, str]]:
    valuation = shown["valuation"]
    requested = valuation["requested_amount"]
    return [
        ("Gold rate (24K)", f"{rupees(valuation['gold_rate_24k_per_g'])}/g"),
        ("Total gross weight", f"{valuation['total_gross_g']} g"),
        ("Total net weight", f"{valuation['total_net_g']} g"),
        ("Total value", rupees(valuation["total_value"])),
        ("Loan-to-value cap", f"{valuation['ltv_cap_pct']}%"),
        ("Eligible loan", rupees(valuation["eligible_max_loan"])),
        ("Requested loan", rupees(requested) if requested else "not stated"),
    ]


def item_cells(number: int, item: Mapping[str, str]) -> list[str]:
    return [
        str(number),
        item["type"],
        item["count"],
        item["gross_g"],
        item["deduction_g"],
        item["net_g"],
        item["karat"],
        item["confidence_pct"] or "-",
        format_inr(Decimal(item["value"])),
    ]


ITEM_COLUMNS: Final = (
    ("#", 8, "C"),
    ("Type", 26, "L"),
    ("Count", 13, "R"),
    ("Gross g", 21, "R"),
    ("Deduct. g", 21, "R"),
    ("Net g", 21, "R"),
    ("Karat", 22, "C"),
    ("Conf. %", 17, "R"),
    ("Value ₹", 31, "R"),
)


def certificate_items(
    items: Sequence[ItemValuation], confidences: Mapping[str, Decimal]
) -> tuple[CertificateItem, ...]:
    """Certificate lines from valued items, with each item's purity-test confidence by id."""
    return tuple(
        CertificateItem.from_valuation(item, confidences.get(item.item_id)) for item in items
    )
