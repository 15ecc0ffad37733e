"""Purity-test records: creating a test, starting or resuming it, checkpoints, the result.

The live transports (`live/`) call these, each in its own short transaction, so a test
that streams for a minute never holds a database transaction open. The result is written
in one transaction (test row, evidence rows, the item's karat, the appraisal's status, the
chain and the events): a test is either completed with all of it or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.appraisal import repository, service
from touchstone.appraisal.exceptions import (
    IllegalTransition,
    PurityTestClosed,
    PurityTestNotFound,
)
from touchstone.appraisal.models import (
    AppraisalStatus,
    EvidenceKind,
    PurityTest,
    PurityTestStatus,
)
from touchstone.appraisal.org_settings import service as org_settings
from touchstone.appraisal.purity.pipeline import PurityResult, Stage
from touchstone.core.auth import Principal
from touchstone.core.db import utcnow
from touchstone.core.events import publish
from touchstone.core.reads import ItemQuery, TenantRead, read_item
from touchstone.core.storage import StoredObject

TESTABLE = frozenset(
    {
        AppraisalStatus.ITEMS_ADDED,
        AppraisalStatus.PURITY_IN_PROGRESS,
        AppraisalStatus.PURITY_COMPLETED,
        AppraisalStatus.VALUED,
    }
)


@dataclass(frozen=True, slots=True)
class FrameCounts:
    received: int
    processed: int
    dropped: int


async def create_test(
    session: AsyncSession,
    principal: Principal,
    appraisal_id: uuid.UUID,
    item_id: uuid.UUID,
    device_header: str | None,
) -> PurityTest:
    """A new test of the item; an unfinished earlier test of it is abandoned."""
    appraisal = await service.get_appraisal(session, principal, appraisal_id, for_update=True)
    item = await service.get_item(session, appraisal, item_id)
    if appraisal.status not in TESTABLE:
        raise IllegalTransition(f"Purity cannot be tested in status '{appraisal.status}'")
    settings = await org_settings.org_settings(session, principal.org_id)
    device_id = await org_settings.check_device(session, principal, settings, device_header)
    for earlier in await repository.tests_of_item(session, principal.org_id, item.id):
        if PurityTestStatus(earlier.status).open:
            earlier.status = PurityTestStatus.ABANDONED
            earlier.snapshot = None
    test = PurityTest(
        id=uuid.uuid4(),
        org_id=principal.org_id,
        appraisal_id=appraisal.id,
        item_id=item.id,
        status=PurityTestStatus.CREATED,
        engine=settings.detector_engine,
        reference_karats=list(settings.reference_karats),
        device_id=device_id,
        created_by=principal.id,
        stage=Stage.RUBBING.value,
        stage_timings={},
        milestones={},
        detector_versions={},
    )
    session.add(test)
    if appraisal.status != AppraisalStatus.PURITY_IN_PROGRESS:
        service.move(appraisal, AppraisalStatus.PURITY_IN_PROGRESS)
        appraisal.valuation = None
    await session.flush()
    await service.record(
        session,
        principal,
        appraisal,
        "appraisal.purity_test_created",
        {
            "purity_test_id": str(test.id),
            "item_id": str(item.id),
            "engine": test.engine,
            "reference_karats": test.reference_karats,
        },
    )
    return test


async def get_test(
    session: AsyncSession, principal: Principal, test_id: uuid.UUID, *, for_update: bool = False
) -> PurityTest:
    test = await repository.get_test(session, principal, test_id, for_update=for_update)
    if test is None:
        raise PurityTestNotFound()
    return test


async def read_test(read: TenantRead, test_id: uuid.UUID) -> dict[str, Any]:
    """`PurityTestOut`'s fields, when the test's appraisal is visible to the caller."""

    def plan(principal: Principal) -> tuple[ItemQuery, dict[str, Any]]:
        return repository.PURITY_TEST.bound(principal, {"id": test_id})

    return await read_item(read, plan, PurityTestNotFound())


async def start(
    session: AsyncSession, principal: Principal, test_id: uuid.UUID, transport: str
) -> PurityTest:
    """Mark the test streaming; a test with a snapshot resumes where it stopped."""
    test = await get_test(session, principal, test_id, for_update=True)
    if not PurityTestStatus(test.status).open:
        raise PurityTestClosed(f"The purity test is {test.status}; create a new one to retest")
    resumed = test.snapshot is not None
    test.status = PurityTestStatus.IN_PROGRESS
    test.transport = transport
    test.started_at = test.started_at or utcnow()
    appraisal = await service.get_appraisal(session, principal, test.appraisal_id, for_update=True)
    await service.record(
        session,
        principal,
        appraisal,
        "appraisal.purity_test_resumed" if resumed else "appraisal.purity_test_started",
        {"purity_test_id": str(test.id), "transport": transport, "stage": test.stage},
    )
    return test


def _count(test: PurityTest, counts: FrameCounts) -> None:
    test.frames_received += counts.received
    test.frames_processed += counts.processed
    test.frames_dropped += counts.dropped


async def checkpoint(
    session: AsyncSession,
    principal: Principal,
    test_id: uuid.UUID,
    status: Mapping[str, Any],
    snapshot: dict[str, Any],
) -> None:
    """On a stage change: keep a resumable snapshot and tell live followers."""
    test = await get_test(session, principal, test_id, for_update=True)
    if test.status != PurityTestStatus.IN_PROGRESS:
        return
    test.stage = str(status["stage"])
    test.snapshot = snapshot
    appraisal = await service.get_appraisal(session, principal, test.appraisal_id)
    await publish(
        session,
        principal.org_id,
        "appraisal.purity_progress",
        aggregate=("appraisal", test.appraisal_id),
        data={
            "branch_id": str(appraisal.branch_id),  # live streams keep it in the branch
            "appraisal_id": str(test.appraisal_id),
            "item_id": str(test.item_id),
            "purity_test_id": str(test.id),
            "stage": status["stage"],
            "confirmations": status["confirmations"],
            "hint": status["hint"],
        },
    )


async def interrupt(
    session: AsyncSession,
    principal: Principal,
    test_id: uuid.UUID,
    snapshot: dict[str, Any],
    counts: FrameCounts,
) -> None:
    """The client went away mid-test: keep where it stood, so it can be resumed."""
    test = await get_test(session, principal, test_id, for_update=True)
    if test.status != PurityTestStatus.IN_PROGRESS:
        return
    test.status = PurityTestStatus.INTERRUPTED
    test.stage = str(snapshot["stage"])
    test.snapshot = snapshot
    _count(test, counts)
    appraisal = await service.get_appraisal(session, principal, test.appraisal_id, for_update=True)
    await service.record(
        session,
        principal,
        appraisal,
        "appraisal.purity_test_interrupted",
        {"purity_test_id": str(test.id), "stage": test.stage},
        topic="appraisal.purity_progress",
    )


async def complete(
    session: AsyncSession,
    principal: Principal,
    test_id: uuid.UUID,
    result: PurityResult,
    evidence: Mapping[str, StoredObject],
    counts: FrameCounts,
) -> AppraisalStatus:
    """Save the result (the seed's purity_test_details) and move the appraisal on when
    every item is tested. Returns the appraisal's status afterwards."""
    test = await get_test(session, principal, test_id, for_update=True)
    if test.status != PurityTestStatus.IN_PROGRESS:
        raise PurityTestClosed(f"The purity test is {test.status}")
    appraisal = await service.get_appraisal(session, principal, test.appraisal_id, for_update=True)
    item = await service.get_item(session, appraisal, test.item_id)
    saved = result.to_dict()
    confidence = Decimal(str(round(result.confidence, 4)))
    test.status = PurityTestStatus.COMPLETED
    test.stage = Stage.COMPLETED.value
    test.karat, test.confidence, test.reason = saved["karat"], confidence, result.reason
    test.stage_timings = saved["stage_timings"]
    test.milestones = saved["milestones"]
    test.detector_versions = saved["detector_versions"]
    test.method, test.reaction = saved["method"], saved["reaction"]
    test.snapshot = None
    test.completed_at = utcnow()
    _count(test, counts)
    item.karat, item.purity_confidence = saved["karat"], confidence
    for name, stored in evidence.items():
        await service.add_evidence(
            session,
            principal,
            appraisal,
            stored,
            EvidenceKind(name),
            item_id=item.id,
            purity_test_id=test.id,
        )
    await session.flush()
    if (
        appraisal.status == AppraisalStatus.PURITY_IN_PROGRESS
        and await repository.untested_items(session, principal.org_id, appraisal.id) == 0
    ):
        service.move(appraisal, AppraisalStatus.PURITY_COMPLETED)
    await service.record(
        session,
        principal,
        appraisal,
        "appraisal.purity_test_completed",
        {
            "purity_test_id": str(test.id),
            "item_id": str(item.id),
            "karat": saved["karat"],
            "confidence": str(confidence),
            "evidence": {name: stored.sha256 for name, stored in evidence.items()},
        },
        topic="appraisal.completed",
    )
    return AppraisalStatus(appraisal.status)
