"""What an appraisal certificate shows, and the digest that proves it was not changed.

Everything the certificate shows is first reduced to one canonical "shown" mapping of
plain strings (`shown_fields`); the digest, the PDF (`pdf.py`) and the verification page
(`page.py`) are all made from it, so a digest that matches proves the customer holds the
certificate the bank issued, and a change to any shown field changes the digest.

Personal numbers are masked before they reach that mapping: the certificate, the page and
the digest never carry a full phone or ID number (a SHA-256 over a 12-digit Aadhaar
number could be reversed by trying all 10^12 of them).

Format 2 adds what an auditor asks for (how each item was tested, labels for the lending
checks and the ID document, the approving manager's signature block). A certificate issued
in format 1 keeps its format: its mapping, and so its digest, is exactly as issued.
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
    RULE_COIN_WEIGHT,
    RULE_JEWELLERY_WEIGHT,
    RULE_KARAT_ACCEPTED,
    RULE_LTV_TIER,
    RULE_REQUESTED_WITHIN_ELIGIBILITY,
    ItemValuation,
    RuleCheck,
    format_inr,
    round_grams,
    round_money,
)

CERTIFICATE_FORMAT_VERSION: Final = 2
"""Part of the digest, so a future layout with other fields never collides with this one."""

ID_DOCUMENT_LABELS: Final = {
    "aadhaar": "Aadhaar",
    "pan": "PAN",
    "passport": "Passport",
    "voter_id": "Voter ID",
    "driving_licence": "Driving licence",
    "other": "Other ID",
}
CHECK_LABELS: Final = {
    RULE_KARAT_ACCEPTED: "Purity accepted for lending",
    RULE_JEWELLERY_WEIGHT: "Jewellery weight per borrower",
    RULE_COIN_WEIGHT: "Coin weight per borrower",
    RULE_LTV_TIER: "Loan-to-value cap",
    RULE_REQUESTED_WITHIN_ELIGIBILITY: "Requested loan within eligibility",
}
ROLE_LABELS: Final = {
    "branch_manager": "Branch manager",
    "org_admin": "Organisation administrator",
    "platform_admin": "Platform administrator",
}
CONFIDENCE_LEGEND: Final = (
    "Conf. %: how sure the live touchstone test was of the karat it read (0-100); its method "
    "(compared with reference needles, or an absolute reading, which is trusted less) is "
    "stated under Purity tests. '-' means the item was not tested; 'inconclusive' items are "
    "valued at zero."
)
ABSOLUTE_METHOD_TEXT: Final = "absolute reading (no reference needles), lower confidence"
TIME_FORMAT: Final = "%d %b %Y %H:%M %Z"


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
class PurityRecord:
    """How one item's karat was read, as an auditor asks: the method, engine and version,
    when it ran, how long each stage took and what the acid did to each streak."""

    item_number: int
    karat: str
    reason: str
    engine: str
    detector_versions: Mapping[str, str]
    reference_karats: Sequence[str]
    started_at: datetime | None
    stage_seconds: Mapping[str, Decimal]
    """Seconds spent in each stage (rubbing, acid), in the order they ran."""
    reaction: Mapping[str, Decimal]
    """Retention (0 to 1) of each streak under the acid: "ornament" and each needle's karat."""


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
    purity_tests: Sequence[PurityRecord] = ()
    approver_role: str = ""
    approved_at: datetime | None = None
    format_version: int = CERTIFICATE_FORMAT_VERSION

    def __post_init__(self) -> None:
        moments = [self.issued_at, self.approved_at, *(t.started_at for t in self.purity_tests)]
        if any(moment is not None and moment.utcoffset() is None for moment in moments):
            raise ValueError("issued_at, approved_at and test times must be timezone-aware")
        if self.format_version not in (1, CERTIFICATE_FORMAT_VERSION):
            raise ValueError(f"unknown certificate format {self.format_version}")


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


def method_text(reference_karats: Sequence[str]) -> str:
    if not reference_karats:
        return ABSOLUTE_METHOD_TEXT
    return "compared with reference needles of " + ", ".join(reference_karats)


def _moment(moment: datetime, issued_at: datetime) -> str:
    """`moment` printed as the issue time is, in its time zone: one zone on a certificate."""
    return moment.astimezone(issued_at.tzinfo).strftime(TIME_FORMAT)


def _reaction_text(reaction: Mapping[str, Decimal], reason: str) -> str:
    if "ornament" not in reaction:
        return f"no reaction read ({reason})"
    kept = f"the ornament's streak kept {_percent(reaction['ornament'])}% under the acid"
    needles = [
        f"{karat} {_percent(value)}%"
        for karat, value in sorted(reaction.items())
        if karat != "ornament"
    ]
    return kept + (f"; the needles' streaks kept {', '.join(needles)}" if needles else "")


def _purity_fields(test: PurityRecord, issued_at: datetime) -> dict[str, str]:
    versions = "; ".join(
        f"{name}: {version}" for name, version in sorted(test.detector_versions.items())
    )
    stages = ", ".join(
        f"{stage} {seconds.quantize(Decimal('0.1'))} s"
        for stage, seconds in test.stage_seconds.items()
    )
    return {
        "item": str(test.item_number),
        "result": f"{test.karat} ({test.reason})",
        "method": method_text(test.reference_karats),
        "engine": f"{test.engine} ({versions})" if versions else test.engine,
        "ran_at": "" if test.started_at is None else _moment(test.started_at, issued_at),
        "stages": stages,
        "reaction": _reaction_text(test.reaction, test.reason),
    }


def _check_fields(check: RuleCheck, labelled: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {"rule": check.rule, "passed": check.passed, "detail": check.detail}
    if labelled:
        shown["label"] = CHECK_LABELS.get(check.rule, check.rule.replace("_", " ").capitalize())
    return shown


def shown_fields(data: CertificateData) -> dict[str, Any]:
    """Everything the certificate shows, as canonical strings (and booleans).

    Format 1 (certificates issued before format 2) is rebuilt exactly as it was issued.
    """
    current = data.format_version >= 2
    document_type = data.id_document_type
    shown = {
        "format": data.format_version,
        "certificate_number": data.certificate_number,
        "issued_at": data.issued_at.isoformat(),
        "bank": data.bank_name,
        "branch": data.branch_name,
        "customer": {
            "name": data.customer_name,
            "phone": mask_phone(data.customer_phone),
            "id_document_type": ID_DOCUMENT_LABELS.get(document_type, document_type)
            if current
            else document_type,
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
        "checks": [_check_fields(check, current) for check in data.checks],
        "evidence": [
            {"label": label, "sha256": hashlib.sha256(jpeg).hexdigest()}
            for label, jpeg in data.evidence
        ],
    }
    if current:
        shown["purity_tests"] = [_purity_fields(t, data.issued_at) for t in data.purity_tests]
        shown["approval"] = {
            "name": data.approver_name,
            "role": ROLE_LABELS.get(data.approver_role, data.approver_role or "Approver"),
            "date": "" if data.approved_at is None else _moment(data.approved_at, data.issued_at),
        }
    return shown


def issued_text(shown: Mapping[str, Any]) -> str:
    """The issue time as the PDF prints it and the page shows it."""
    return datetime.fromisoformat(shown["issued_at"]).strftime(TIME_FORMAT)


def check_label(check: Mapping[str, Any]) -> str:
    """A format 2 check's label; a format 1 certificate showed the rule's name."""
    return str(check.get("label", check["rule"]))


def purity_rows(test: Mapping[str, str]) -> list[tuple[str, str]]:
    return [
        ("Result", test["result"]),
        ("Method", test["method"]),
        ("Engine and version", test["engine"]),
        ("Tested", test["ran_at"] or "not recorded"),
        ("Stages", test["stages"] or "not recorded"),
        ("Acid reaction", test["reaction"]),
    ]


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
