"""Statement batches: intake, metering, reads, categories and billing webhooks.

Other modules import this file only. Functions flush, never commit: the request's unit of
work (or the job's transaction) commits. The heavy lifting (extraction, workbook) runs in
`tasks.py`; this file decides what is accepted and records what happened.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import add_unique, unique_changes
from touchstone.core.errors import InvalidInput, NotFound, PayloadTooLarge
from touchstone.core.events import publish
from touchstone.core.jobs import JobRecord, defer
from touchstone.core.pagination import PageParams, order_by, paginate
from touchstone.core.storage import Storage, file_kind
from touchstone.statements import tasks
from touchstone.statements.categorise import Rule
from touchstone.statements.engines.billing import BillingEngine
from touchstone.statements.exceptions import (
    PasswordRequired,
    QuotaExceeded,
    TooManyFiles,
    WrongPassword,
)
from touchstone.statements.extraction import ExtractionLimits, inspect_pdf
from touchstone.statements.models import (
    FINAL_STATES,
    Batch,
    CategoryRule,
    Statement,
    StatementState,
    StatementTransaction,
    Subscription,
    UsageEvent,
)
from touchstone.statements.processing import PAGES, extraction_limits, one_chunk, password_sealer
from touchstone.statements.schemas import RuleIn

PDF = "application/pdf"
STATEMENT_FILES = file_kind("statement", permission="statements:read")


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes
    password: str | None


async def read_uploads(
    files: Sequence[tuple[str, int | None, Any]], passwords: str | None, settings: Settings
) -> list[Upload]:
    """Bound the batch before reading it: file count, declared and actual sizes, passwords.

    `files` are (filename, declared size, readable) triples from the multipart form.
    """
    if not files:
        raise InvalidInput("Send one or more PDF files in the `files` field")
    if len(files) > settings.statements_max_files:
        raise TooManyFiles(f"A batch takes at most {settings.statements_max_files} files")
    by_name = _parse_passwords(passwords)
    limit = settings.statements_max_file_bytes
    uploads = []
    for filename, declared, readable in files:
        if declared is not None and declared > limit:
            raise PayloadTooLarge(f"{filename!r} is larger than {limit} bytes")
        data = await readable.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"{filename!r} is larger than {limit} bytes")
        uploads.append(Upload(filename[:255] or "statement.pdf", data, by_name.get(filename)))
    return uploads


def _parse_passwords(passwords: str | None) -> dict[str, str]:
    if not passwords:
        return {}
    try:
        parsed = json.loads(passwords)
    except ValueError as exc:
        raise InvalidInput("`passwords` must be a JSON object of file name -> password") from exc
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(v) <= 200 for k, v in parsed.items()
    ):
        raise InvalidInput("`passwords` must be a JSON object of file name -> password")
    return parsed


@dataclass(frozen=True, slots=True)
class Inspected:
    upload: Upload
    pages: int
    needs_password: bool
    error: str | None


async def _inspect(upload: Upload, limits: ExtractionLimits) -> Inspected:
    """Refuse what can never be a statement now (415/422/413); park encrypted files."""
    try:
        info = await asyncio.to_thread(inspect_pdf, upload.data, upload.password, limits=limits)
    except PasswordRequired:
        return Inspected(upload, 0, True, None)
    except WrongPassword as exc:
        return Inspected(upload, 0, True, exc.detail)
    return Inspected(upload, info.pages, False, None)


async def create_batch(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    storage: Storage,
    uploads: Sequence[Upload],
    label: str,
) -> tuple[Batch, JobRecord]:
    """Check every file, meter the pages against the plan, store, and queue the processing.

    Nothing is stored unless every file passes; a failure after storing removes the files.
    """
    limits = extraction_limits(settings)
    inspected = [await _inspect(upload, limits) for upload in uploads]
    await _check_quota(session, principal.org_id, settings, sum(i.pages for i in inspected))
    batch = Batch(id=uuid.uuid4(), org_id=principal.org_id, label=label, created_by=principal.id)
    session.add(batch)
    stored_keys: list[str] = []
    try:
        for position, item in enumerate(inspected):
            stored = await storage.put(
                principal.org_id,
                one_chunk(item.upload.data),
                kind=STATEMENT_FILES,
                allowed_types={PDF},
            )
            stored_keys.append(stored.key)
            session.add(
                await _new_statement(
                    session, settings, batch, position, item, stored.key, stored.sha256
                )
            )
        await session.flush()
        record = await defer(session, principal, tasks.process_batch, batch_id=str(batch.id))
    except BaseException:
        for key in stored_keys:
            await storage.delete(principal.org_id, key)
        raise
    batch.job_id = record.id
    await record_audit(
        session, principal, "statements.batch_created", "batch", batch.id, {"files": len(uploads)}
    )
    await publish(
        session,
        principal.org_id,
        "statements.batch_created",
        aggregate=("batch", batch.id),
        data={"files": len(uploads), "job_id": str(record.id)},
    )
    return batch, record


async def _new_statement(
    session: AsyncSession,
    settings: Settings,
    batch: Batch,
    position: int,
    item: Inspected,
    key: str,
    sha256: str,
) -> Statement:
    """A queued statement, linked to an earlier upload of the same bytes when there is one."""
    original = (
        await session.execute(
            select(Statement.id)
            .where(
                Statement.org_id == batch.org_id,
                Statement.sha256 == sha256,
                Statement.duplicate_of.is_(None),
                Statement.status.in_([s.value for s in FINAL_STATES]),
            )
            .order_by(Statement.created_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    password = item.upload.password
    return Statement(
        id=uuid.uuid4(),
        org_id=batch.org_id,
        batch_id=batch.id,
        position=position,
        filename=item.upload.filename,
        storage_key=key,
        sha256=sha256,
        size=len(item.upload.data),
        pages=item.pages,
        password_protected=item.needs_password or password is not None,
        password_sealed=password_sealer(settings).seal(password) if password else None,
        status=(StatementState.NEEDS_PASSWORD if item.needs_password else StatementState.QUEUED),
        error_code="wrong_password" if item.error else None,
        error_detail=item.error,
        duplicate_of=original,
    )


# --- quotas and usage -----------------------------------------------------------------------


def _month_start(today: dt.date | None = None) -> dt.date:
    return (today or dt.datetime.now(dt.UTC).date()).replace(day=1)


async def plan_of(session: AsyncSession, org_id: uuid.UUID) -> str:
    plan = (
        await session.execute(
            select(Subscription.plan).where(
                Subscription.org_id == org_id, Subscription.status.in_(("active", "trialing"))
            )
        )
    ).scalar_one_or_none()
    return plan or "free"


async def pages_used(session: AsyncSession, org_id: uuid.UUID) -> int:
    start = dt.datetime.combine(_month_start(), dt.time(), dt.UTC)
    used = await session.execute(
        select(func.coalesce(func.sum(UsageEvent.quantity), 0)).where(
            UsageEvent.org_id == org_id, UsageEvent.metric == PAGES, UsageEvent.occurred_at >= start
        )
    )
    return int(used.scalar_one())


async def pages_pending(session: AsyncSession, org_id: uuid.UUID) -> int:
    """Pages accepted but not metered yet: statements waiting for or in a job (a copy of an
    earlier file and a statement read before are never metered again)."""
    metered = select(UsageEvent.id).where(
        UsageEvent.statement_id == Statement.id, UsageEvent.metric == PAGES
    )
    pending = await session.execute(
        select(func.coalesce(func.sum(Statement.pages), 0)).where(
            Statement.org_id == org_id,
            Statement.status.in_((StatementState.QUEUED, StatementState.PROCESSING)),
            Statement.duplicate_of.is_(None),
            ~metered.exists(),
        )
    )
    return int(pending.scalar_one())


def quota_for(settings: Settings, plan: str) -> int | None:
    quota = settings.statements_plan_quotas.get(plan, settings.statements_plan_quotas.get("free"))
    return quota or None


async def _check_quota(
    session: AsyncSession, org_id: uuid.UUID, settings: Settings, pages: int
) -> None:
    quota = quota_for(settings, await plan_of(session, org_id))
    if quota is None:
        return
    # Pages are metered when read, so uploads waiting for the worker count too, and the
    # org's uploads take turns from here to their commit: otherwise a burst of uploads
    # (one after another, or at once) each saw the same unmetered month and all passed.
    await session.execute(
        text("select pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"statements-quota:{org_id}"},
    )
    used = await pages_used(session, org_id) + await pages_pending(session, org_id)
    if used + pages > quota:
        raise QuotaExceeded(
            f"This batch has {pages} pages; {used} of this month's {quota} are used. "
            "Upgrade the plan or wait for the next month.",
            extra={"pages_used": used, "pages_quota": quota, "pages_requested": pages},
        )


@dataclass(frozen=True, slots=True)
class Usage:
    plan: str
    period_start: dt.date
    pages_used: int
    pages_quota: int | None
    billing: str


async def usage(
    session: AsyncSession, principal: Principal, settings: Settings, billing: BillingEngine
) -> Usage:
    plan = await plan_of(session, principal.org_id)
    return Usage(
        plan,
        _month_start(),
        await pages_used(session, principal.org_id),
        quota_for(settings, plan),
        billing.name,
    )


# --- batches and statements -----------------------------------------------------------------


async def get_batch(session: AsyncSession, principal: Principal, batch_id: uuid.UUID) -> Batch:
    batch = (
        await session.execute(
            select(Batch).where(Batch.id == batch_id, Batch.org_id == principal.org_id)
        )
    ).scalar_one_or_none()
    if batch is None:
        raise NotFound("Batch not found")
    return batch


async def statements_of(session: AsyncSession, batch: Batch) -> Sequence[Statement]:
    return (
        (
            await session.execute(
                select(Statement)
                .where(Statement.batch_id == batch.id, Statement.org_id == batch.org_id)
                .order_by(Statement.position)
            )
        )
        .scalars()
        .all()
    )


async def get_statement(
    session: AsyncSession, principal: Principal, batch_id: uuid.UUID, statement_id: uuid.UUID
) -> Statement:
    statement = (
        await session.execute(
            select(Statement)
            .where(
                Statement.id == statement_id,
                Statement.batch_id == batch_id,
                Statement.org_id == principal.org_id,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if statement is None:
        raise NotFound("Statement not found")
    return statement


async def list_batches(
    session: AsyncSession, principal: Principal, page: PageParams
) -> tuple[Sequence[Any], int]:
    query = select(Batch).where(Batch.org_id == principal.org_id)
    columns = {"created_at": Batch.created_at, "label": Batch.label}
    query = query.order_by(*order_by(page, columns, "-created_at"), Batch.id)
    return await paginate(session, query, page)


async def supply_password(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    storage: Storage,
    batch_id: uuid.UUID,
    statement_id: uuid.UUID,
    password: str,
) -> JobRecord:
    """Open a parked statement with its password and queue it; a wrong one changes nothing."""
    statement = await get_statement(session, principal, batch_id, statement_id)
    if statement.status != StatementState.NEEDS_PASSWORD:
        raise InvalidInput("This statement is not waiting for a password")
    stream = await storage.open(principal.org_id, statement.storage_key)
    data = b"".join([chunk async for chunk in stream.chunks])
    info = await asyncio.to_thread(inspect_pdf, data, password, limits=extraction_limits(settings))
    await _check_quota(session, principal.org_id, settings, info.pages)
    statement.password_sealed = password_sealer(settings).seal(password)
    statement.pages = info.pages
    statement.status = StatementState.QUEUED
    statement.error_code = statement.error_detail = None
    await record_audit(
        session, principal, "statements.password_supplied", "statement", statement.id
    )
    return await defer(session, principal, tasks.process_batch, batch_id=str(batch_id))


async def reprocess(
    session: AsyncSession, principal: Principal, batch_id: uuid.UUID, statement_id: uuid.UUID
) -> JobRecord:
    statement = await get_statement(session, principal, batch_id, statement_id)
    if statement.status not in FINAL_STATES:
        raise InvalidInput(f"The statement is {statement.status}; only finished ones reprocess")
    statement.status = StatementState.QUEUED
    statement.duplicate_of = None  # reprocessing means reading this file itself
    await record_audit(session, principal, "statements.reprocess", "statement", statement.id)
    return await defer(session, principal, tasks.process_batch, batch_id=str(batch_id))


async def delete_batch(
    session: AsyncSession, principal: Principal, storage_keys_out: list[str], batch_id: uuid.UUID
) -> None:
    """Delete the batch and its rows; the files go after the commit (see the router)."""
    batch = await get_batch(session, principal, batch_id)
    if batch.status == "processing":
        raise InvalidInput("The batch is being processed; delete it when it is done")
    statements = await statements_of(session, batch)
    storage_keys_out.extend(s.storage_key for s in statements)
    if batch.report_key:
        storage_keys_out.append(batch.report_key)
    await session.execute(
        update(Statement)
        .where(Statement.duplicate_of.in_([s.id for s in statements]))
        .values(duplicate_of=None)
    )
    await session.delete(batch)
    await record_audit(
        session,
        principal,
        "statements.batch_deleted",
        "batch",
        batch.id,
        {"files": len(statements)},
    )


# --- transactions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransactionFilter:
    statement_id: uuid.UUID | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    category: str | None = None
    text: str | None = None


def transactions_query(batch: Batch, where: TransactionFilter) -> Any:
    query = select(StatementTransaction).where(
        StatementTransaction.batch_id == batch.id, StatementTransaction.org_id == batch.org_id
    )
    if where.statement_id:
        query = query.where(StatementTransaction.statement_id == where.statement_id)
    if where.date_from:
        query = query.where(StatementTransaction.txn_date >= where.date_from)
    if where.date_to:
        query = query.where(StatementTransaction.txn_date <= where.date_to)
    if where.min_amount is not None:
        query = query.where(func.abs(StatementTransaction.amount) >= where.min_amount)
    if where.max_amount is not None:
        query = query.where(func.abs(StatementTransaction.amount) <= where.max_amount)
    if where.category:
        query = query.where(StatementTransaction.category == where.category)
    if where.text:
        escaped = where.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(StatementTransaction.description.ilike(f"%{escaped}%"))
    return query


async def list_transactions(
    session: AsyncSession, batch: Batch, where: TransactionFilter, page: PageParams
) -> tuple[Sequence[Any], int]:
    columns = {
        "txn_date": StatementTransaction.txn_date,
        "amount": StatementTransaction.amount,
        "row": StatementTransaction.row,
    }
    query = transactions_query(batch, where).order_by(
        *order_by(page, columns, "txn_date"),
        StatementTransaction.statement_id,
        StatementTransaction.row,
    )
    return await paginate(session, query, page)


EXPORT_LIMIT = 200_000


async def all_transactions(
    session: AsyncSession, batch: Batch, where: TransactionFilter
) -> Sequence[StatementTransaction]:
    """Every match, in statement order, for a CSV export (bounded: a batch is bounded too)."""
    query = transactions_query(batch, where).order_by(
        StatementTransaction.statement_id, StatementTransaction.row
    )
    return (await session.execute(query.limit(EXPORT_LIMIT))).scalars().all()


async def override_category(
    session: AsyncSession,
    principal: Principal,
    batch: Batch,
    transaction_id: uuid.UUID,
    category: str,
) -> StatementTransaction:
    """A person's category wins over the rules; the workbook is rebuilt to show it."""
    row = (
        await session.execute(
            select(StatementTransaction)
            .where(
                StatementTransaction.id == transaction_id,
                StatementTransaction.batch_id == batch.id,
                StatementTransaction.org_id == principal.org_id,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("Transaction not found")
    before = row.category
    row.category, row.rule, row.overridden = category, None, True
    await record_audit(
        session,
        principal,
        "statements.category_overridden",
        "transaction",
        row.id,
        {"from": before, "to": category},
    )
    await defer(session, principal, tasks.rebuild_report, batch_id=str(batch.id))
    return row


# --- rules ------------------------------------------------------------------------------


async def list_rules(session: AsyncSession, principal: Principal) -> Sequence[CategoryRule]:
    query = select(CategoryRule).where(CategoryRule.org_id == principal.org_id)
    return (await session.execute(query.order_by(CategoryRule.name))).scalars().all()


def _checked_rule(data: RuleIn) -> Rule:
    try:
        return data.to_rule()
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


async def create_rule(session: AsyncSession, principal: Principal, data: RuleIn) -> CategoryRule:
    rule = _checked_rule(data)
    row = CategoryRule(
        id=uuid.uuid4(), org_id=principal.org_id, name=rule.name, definition=rule.to_mapping()
    )
    await add_unique(session, row, "A rule with this name exists")
    await record_audit(
        session, principal, "statements.rule_created", "rule", row.id, row.definition
    )
    return row


async def replace_rule(
    session: AsyncSession, principal: Principal, rule_id: uuid.UUID, data: RuleIn
) -> CategoryRule:
    rule = _checked_rule(data)
    row = await _get_rule(session, principal, rule_id)
    async with unique_changes(session, "A rule with this name exists"):
        row.name, row.definition = rule.name, rule.to_mapping()
    await record_audit(
        session, principal, "statements.rule_replaced", "rule", row.id, row.definition
    )
    return row


async def delete_rule(session: AsyncSession, principal: Principal, rule_id: uuid.UUID) -> None:
    row = await _get_rule(session, principal, rule_id)
    await session.delete(row)
    await record_audit(session, principal, "statements.rule_deleted", "rule", rule_id)


async def _get_rule(
    session: AsyncSession, principal: Principal, rule_id: uuid.UUID
) -> CategoryRule:
    row = (
        await session.execute(
            select(CategoryRule).where(
                CategoryRule.id == rule_id, CategoryRule.org_id == principal.org_id
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("Rule not found")
    return row
