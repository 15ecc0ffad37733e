"""Issuing an approved appraisal's certificate, and verifying one without signing in.

What a certificate shows is frozen at issue into `Certificate.data` (personal numbers
sealed, evidence by storage key and SHA-256). The public page first compares the digest in
the QR code's URL with the stored one (a URL with another digest learns nothing more), then
rebuilds the certificate from its record alone and recomputes the digest: a certificate
whose record or images were changed after issue shows as not verified too.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

import touchstone.identity.service as identity
from touchstone.appraisal import repository, service
from touchstone.appraisal.certificate.document import (
    CERTIFICATE_FORMAT_VERSION,
    CertificateData,
    CertificateItem,
    PurityRecord,
    certificate_digest,
    certificate_items,
)
from touchstone.appraisal.certificate.pdf import render_certificate
from touchstone.appraisal.customers import service as customers
from touchstone.appraisal.exceptions import CertificateNotFound, IllegalTransition
from touchstone.appraisal.models import (
    Appraisal,
    AppraisalStatus,
    Certificate,
    ChainEvent,
    Evidence,
    EvidenceKind,
    Item,
)
from touchstone.appraisal.purity.pipeline import Stage
from touchstone.appraisal.valuation import GoldRates, LendingPolicy, RuleCheck, Valuation, assess
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import enter_tenant, utcnow
from touchstone.core.reads import TenantRead
from touchstone.core.storage import Storage, file_kind

VERIFY_PATH = "/verify/certificates"
NUMBER_PATTERN = r"^TS-[0-9]{8}-[0-9A-F]{10}$"
STORAGE_KIND = file_kind(
    "certificate", permission="appraisals:read", visible=repository.certificate_visible
)
EVIDENCE_ON_CERTIFICATE = (
    EvidenceKind.RUBBING_CONFIRMED,
    EvidenceKind.ACID_APPLIED,
    EvidenceKind.RESULT,
)
"""Per item, in the order the test took them: the streak, the acid on it, the reading."""
MAX_EVIDENCE_IMAGES = 9
ACTION_APPROVED = "appraisal.approved"


class NotVerified:
    """The verdict on a certificate whose digest does not match: nothing else is read."""


def verify_url(base_url: str, number: str, digest: str) -> str:
    """`base_url` is PUBLIC_URL (`Settings.link_base`): a certificate outlives the request
    that issued it, and a Host header is whatever the caller sent."""
    return f"{base_url.rstrip('/')}{VERIFY_PATH}/{number}?d={digest}"


def _new_number(moment: datetime) -> str:
    """Unguessable (40 random bits): the number alone opens the public page."""
    return f"TS-{moment:%Y%m%d}-{secrets.token_hex(5).upper()}"


def _valuation(appraisal: Appraisal, items: Sequence[Any]) -> tuple[Valuation, GoldRates]:
    """The stored valuation, recomputed from the rates and policy it recorded."""
    stored = appraisal.valuation or {}
    rates = GoldRates(
        per_gram_24k=Decimal(stored["gold_rates"]["per_gram_24k"]),
        per_karat={k: Decimal(v) for k, v in stored["gold_rates"]["per_karat"].items()},
    )
    requested = stored["requested_amount"]
    valuation = assess(
        service.for_valuation(items),
        rates,
        LendingPolicy.from_mapping(stored["policy"]),
        None if requested is None else Decimal(requested),
    )
    return valuation, rates


async def _read(storage: Storage, org_id: uuid.UUID, key: str) -> bytes:
    opened = await storage.open(org_id, key)
    return b"".join([chunk async for chunk in opened.chunks])


async def _evidence_for_certificate(
    session: AsyncSession, appraisal: Appraisal, items: Sequence[Any]
) -> list[Evidence]:
    order = {item.id: number for number, item in enumerate(items, start=1)}
    rows = [
        row
        for row in await service.evidence_of(session, appraisal)
        if row.kind in EVIDENCE_ON_CERTIFICATE and row.item_id in order
    ]
    latest: dict[tuple[uuid.UUID | None, str], Evidence] = {}
    for row in rows:  # oldest first: a retest's frames replace the earlier test's
        latest[(row.item_id, row.kind)] = row
    chosen = sorted(
        latest.values(),
        key=lambda r: (order[r.item_id], EVIDENCE_ON_CERTIFICATE.index(EvidenceKind(r.kind))),
    )
    return chosen[:MAX_EVIDENCE_IMAGES]


def _seconds_per_stage(timings: dict[str, Any]) -> list[list[str]]:
    """[stage, seconds] for rubbing and acid from `PurityTest.stage_timings` (seconds from
    the first frame); a stage that never ended is left out. Pairs, not an object: JSONB
    keeps no key order, and the certificate shows them in the order they ran."""
    durations = []
    for stage in (Stage.RUBBING, Stage.ACID):
        timing = timings.get(stage.value) or {}
        if timing.get("ended") is not None:
            seconds = Decimal(str(timing["ended"])) - Decimal(str(timing["started"]))
            durations.append([stage.value, str(seconds)])
    return durations


async def _purity_records(
    session: AsyncSession, items: Sequence[Item], numbers: dict[str, int]
) -> list[dict[str, Any]]:
    """How each item's karat was read, from its latest completed test (an item whose karat
    was overridden says so)."""
    records = []
    for item in items:
        test = await service.latest_completed_test(session, item)
        if test is None:
            continue
        reason = test.reason or ""
        if item.karat != test.karat:
            reason += f"; overridden to {item.karat} with a recorded reason"
        records.append(
            {
                "item": numbers[str(item.id)],
                "karat": test.karat or "",
                "reason": reason,
                "engine": test.engine,
                "detector_versions": {str(k): str(v) for k, v in test.detector_versions.items()},
                "reference_karats": list(test.reference_karats),
                "started_at": None if test.started_at is None else test.started_at.isoformat(),
                "stage_seconds": _seconds_per_stage(test.stage_timings),
                "reaction": sorted([k, str(v)] for k, v in (test.reaction or {}).items()),
            }
        )
    return records


async def _approver_role(session: AsyncSession, appraisal: Appraisal) -> str:
    """The role the approver acted in, as the appraisal's chain recorded it."""
    query = (
        select(ChainEvent.data)
        .where(
            ChainEvent.org_id == appraisal.org_id,
            ChainEvent.appraisal_id == appraisal.id,
            ChainEvent.action == ACTION_APPROVED,
        )
        .order_by(ChainEvent.seq.desc())
        .limit(1)
    )
    data = (await session.execute(query)).scalar_one_or_none() or {}
    return str(data.get("role") or "")


def _human_detail(detail: str, numbers: dict[str, int]) -> str:
    """A check's detail names items by their number on the certificate, not their id."""
    for item_id, number in numbers.items():
        detail = detail.replace(f"item {item_id}", f"Item {number}")
    return detail


async def issue(
    session: AsyncSession,
    principal: Principal,
    appraisal_id: uuid.UUID,
    settings: Settings,
    storage: Storage,
) -> Certificate:
    """The approved appraisal's certificate (issued once; later calls return it)."""
    appraisal = await service.get_appraisal(session, principal, appraisal_id, for_update=True)
    existing = await _certificate_of(session, appraisal)
    if existing is not None:
        return existing
    if appraisal.status != AppraisalStatus.APPROVED:
        raise IllegalTransition("A certificate is issued for an approved appraisal only")
    items = await service.items_of(session, appraisal)
    valuation, rates = _valuation(appraisal, items)
    customer = await customers.get_customer(session, principal, appraisal.customer_id)
    org = await identity.get_org(session, principal)
    branch = await identity.get_branch(session, principal, appraisal.branch_id)
    evidence = await _evidence_for_certificate(session, appraisal, items)
    numbers = {str(item.id): number for number, item in enumerate(items, start=1)}
    issued_at = utcnow().replace(microsecond=0)
    record: dict[str, Any] = {
        "format": CERTIFICATE_FORMAT_VERSION,
        "certificate_number": _new_number(issued_at),
        "issued_at": issued_at.isoformat(),
        "bank_name": org.name,
        "branch_name": branch.name,
        "customer_name": customer.full_name,
        "customer_phone_sealed": customer.phone_sealed,
        "id_document_type": customer.id_document_type,
        "id_number_sealed": customer.id_number_sealed,
        "appraiser_name": appraisal.appraiser_name,
        "approver_name": appraisal.decided_by_name or "",
        "approver_role": await _approver_role(session, appraisal),
        "approved_at": None if appraisal.decided_at is None else appraisal.decided_at.isoformat(),
        "purity_tests": await _purity_records(session, items, numbers),
        "items": [
            {
                "item_type": line.item_type,
                "count": line.count,
                "gross_weight_g": str(line.gross_weight_g),
                "deduction_g": str(line.deduction_g),
                "net_weight_g": str(line.net_weight_g),
                "karat": line.karat,
                "confidence": None if line.confidence is None else str(line.confidence),
                "value": str(line.value),
            }
            for line in certificate_items(
                valuation.items,
                {str(i.id): i.purity_confidence for i in items if i.purity_confidence is not None},
            )
        ],
        "gold_rate_24k_per_g": str(rates.per_gram_24k),
        "total_gross_weight_g": str(valuation.total_gross_weight_g),
        "total_net_weight_g": str(valuation.total_net_weight_g),
        "total_value": str(valuation.total_value),
        "ltv_cap": str(valuation.ltv_cap),
        "eligible_max_loan": str(valuation.eligible_max_loan),
        "requested_amount": None
        if valuation.requested_amount is None
        else str(valuation.requested_amount),
        "checks": [
            {"rule": c.rule, "passed": c.passed, "detail": _human_detail(c.detail, numbers)}
            for c in valuation.checks
        ],
        "evidence": [
            {
                "label": f"Item {numbers[str(row.item_id)]}: {row.kind.replace('_', ' ')}",
                "key": row.storage_key,
                "sha256": row.sha256,
            }
            for row in evidence
        ],
    }
    data = await certificate_data(record, settings, storage, principal.org_id)
    digest = certificate_digest(data)
    url = verify_url(settings.link_base, data.certificate_number, digest)
    pdf = await anyio.to_thread.run_sync(
        functools.partial(render_certificate, data, verify_url=url)
    )
    stored = await storage.put(
        principal.org_id, _one(pdf), kind=STORAGE_KIND, allowed_types={"application/pdf"}
    )
    certificate = Certificate(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        appraisal_id=appraisal.id,
        number=data.certificate_number,
        digest=digest,
        storage_key=stored.key,
        sha256=stored.sha256,
        data=record,
        issued_at=issued_at,
        issued_by=principal.id,
    )
    session.add(certificate)
    await session.flush()
    await service.record(
        session,
        principal,
        appraisal,
        "appraisal.certificate_issued",
        {"number": certificate.number, "digest": digest, "pdf_sha256": stored.sha256},
        topic="appraisal.certificate_issued",
    )
    return certificate


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _certificate_of(session: AsyncSession, appraisal: Appraisal) -> Certificate | None:
    query = select(Certificate).where(
        Certificate.org_id == appraisal.org_id, Certificate.appraisal_id == appraisal.id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def read_certificate(read: TenantRead, appraisal_id: uuid.UUID) -> dict[str, Any]:
    """The fields of `repository.CERTIFICATE` of the appraisal's certificate."""
    _, (found,) = await service.read_with_appraisal(read, appraisal_id, repository.CERTIFICATE)
    if not found:
        raise CertificateNotFound()
    return found[0]


async def certificate_data(
    record: dict[str, Any], settings: Settings, storage: Storage, org_id: uuid.UUID
) -> CertificateData:
    """Rebuild what the certificate shows from its frozen record (and its evidence images).

    A record without "format" was issued in format 1, which had none of the later keys.
    """
    sealer = customers.sealer(settings)
    requested = record["requested_amount"]
    approved_at = record.get("approved_at")
    return CertificateData(
        format_version=int(record.get("format", 1)),
        approver_role=record.get("approver_role", ""),
        approved_at=None if approved_at is None else datetime.fromisoformat(approved_at),
        purity_tests=[_purity_record(test) for test in record.get("purity_tests", [])],
        certificate_number=record["certificate_number"],
        issued_at=datetime.fromisoformat(record["issued_at"]),
        bank_name=record["bank_name"],
        branch_name=record["branch_name"],
        customer_name=record["customer_name"],
        customer_phone=sealer.open(record["customer_phone_sealed"]),
        id_document_type=record["id_document_type"],
        id_document_number=sealer.open(record["id_number_sealed"]),
        appraiser_name=record["appraiser_name"],
        approver_name=record["approver_name"],
        items=[_item(line) for line in record["items"]],
        gold_rate_24k_per_g=Decimal(record["gold_rate_24k_per_g"]),
        total_gross_weight_g=Decimal(record["total_gross_weight_g"]),
        total_net_weight_g=Decimal(record["total_net_weight_g"]),
        total_value=Decimal(record["total_value"]),
        ltv_cap=Decimal(record["ltv_cap"]),
        eligible_max_loan=Decimal(record["eligible_max_loan"]),
        requested_amount=None if requested is None else Decimal(requested),
        checks=[RuleCheck(c["rule"], c["passed"], c["detail"]) for c in record["checks"]],
        evidence=[
            (image["label"], await _read(storage, org_id, image["key"]))
            for image in record["evidence"]
        ],
    )


def _purity_record(test: dict[str, Any]) -> PurityRecord:
    started_at = test["started_at"]
    return PurityRecord(
        item_number=int(test["item"]),
        karat=test["karat"],
        reason=test["reason"],
        engine=test["engine"],
        detector_versions=test["detector_versions"],
        reference_karats=test["reference_karats"],
        started_at=None if started_at is None else datetime.fromisoformat(started_at),
        stage_seconds={stage: Decimal(seconds) for stage, seconds in test["stage_seconds"]},
        reaction={streak: Decimal(kept) for streak, kept in test["reaction"]},
    )


def _item(line: dict[str, Any]) -> CertificateItem:
    confidence = line["confidence"]
    return CertificateItem(
        item_type=line["item_type"],
        count=int(line["count"]),
        gross_weight_g=Decimal(line["gross_weight_g"]),
        deduction_g=Decimal(line["deduction_g"]),
        net_weight_g=Decimal(line["net_weight_g"]),
        karat=line["karat"],
        confidence=None if confidence is None else Decimal(confidence),
        value=Decimal(line["value"]),
    )


async def verification(
    session: AsyncSession, number: str, digest: str, settings: Settings, storage: Storage
) -> CertificateData | NotVerified | None:
    """For the public page: the genuine certificate, `NotVerified`, or None if unknown.

    The page has no tenant, so a SECURITY DEFINER function finds the certificate's org by
    its number (and nothing else); the rest is read inside that org, under RLS. Without the
    stored digest in the URL nothing is unsealed and no image is read.
    """
    found = await session.execute(
        text("select appraisal_certificate_org(:number)"), {"number": number}
    )
    org_id = found.scalar_one_or_none()
    if org_id is None:
        return None
    await enter_tenant(session, org_id)
    certificate = (
        await session.execute(
            select(Certificate).where(Certificate.org_id == org_id, Certificate.number == number)
        )
    ).scalar_one()
    stored = certificate.digest.encode()
    if not hmac.compare_digest(digest.encode(), stored):  # bytes: any text may be sent
        return NotVerified()
    data = await certificate_data(certificate.data, settings, storage, org_id)
    if not hmac.compare_digest(certificate_digest(data).encode(), stored):
        return NotVerified()
    return data
