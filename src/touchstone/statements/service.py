"""Statement batches: intake, metering, reads, categories and billing webhooks.

Other modules import this file only. Functions flush, never commit: the request's unit of
work (or the job's transaction) commits. The heavy lifting (extraction, workbook) runs in
`tasks.py`; this file decides what is accepted and records what happened.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from touchstone.core.audit import record_audit
from touchstone.core.auth import Principal
from touchstone.core.config import Settings
from touchstone.core.db import add_unique, unique_changes
from touchstone.core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from touchstone.core.events import publish
from touchstone.core.jobs import JobRecord, defer
from touchstone.core.pagination import (
    Condition,
    Items,
    PageParams,
    PageQueries,
    PageShape,
)
from touchstone.core.reads import (
    CompiledQuery,
    Rows,
    Statements,
    TenantRead,
    columns_for,
    compile_query,
    read_items,
)
from touchstone.core.storage import Storage, file_kind
from touchstone.statements import repository, tasks
from touchstone.statements.analysis import BatchAnalysis, analyse
from touchstone.statements.categorise import Rule
from touchstone.statements.engines.billing import BillingEngine
from touchstone.statements.exceptions import (
    PasswordRequired,
    QuotaExceeded,
    TooManyFiles,
    WrongPassword,
)
from touchstone.statements.extraction import ExtractionLimits, inspect_pdf
from touchstone.statements.extraction.pdf import page_texts
from touchstone.statements.models import (
    COMPLETED,
    FINAL_STATES,
    Batch,
    CategoryRule,
    Statement,
    StatementState,
    StatementTransaction,
    Subscription,
    UsageEvent,
)
from touchstone.statements.processing import (
    PAGES,
    extraction_limits,
    one_chunk,
    password_sealer,
    stored_statement,
    stored_transaction,
)
from touchstone.statements.schemas import AnalysisOut, BatchSummaryOut, RuleIn, TransactionOut
from touchstone.statements.workbook import analysis_records

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


def pdf_page_count(data: bytes, max_pages: int) -> int:
    """The platform's PDF check for other modules: pages of an unencrypted PDF within
    `max_pages`, or the typed 413/415/422 error (`not_a_pdf`, `too_many_pages`, ...)."""
    return inspect_pdf(data, None, limits=ExtractionLimits(max_pages=max_pages)).pages


def pdf_page_texts(data: bytes, max_pages: int) -> list[str]:
    """The platform's PDF text reader for other modules: each page's text layer (pdfium)."""
    return page_texts(data, ExtractionLimits(max_pages=max_pages))


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


async def read_usage(read: TenantRead, settings: Settings, billing: BillingEngine) -> Usage:
    """The month's plan and metered pages, as `plan_of` and `pages_used` read them, in one
    round trip."""
    period_start = _month_start()
    since = dt.datetime.combine(period_start, dt.time(), dt.UTC)

    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "since": since}
        return [(repository.PLAN, values), (repository.PAGES_USED, values)]

    plans, used = await read.fetch(plan)
    name = (plans[0][0] if plans else None) or "free"
    return Usage(name, period_start, int(used[0][0]), quota_for(settings, name), billing.name)


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


_BATCH_PAGES = PageShape(
    select(*columns_for(BatchSummaryOut, Batch)).where(Batch.org_id == bindparam("org_id")),
    {},
    {"created_at": Batch.created_at, "label": Batch.label},
    "-created_at",
    Batch.id,
    item=BatchSummaryOut,
)


async def list_batches(read: TenantRead, page: PageParams) -> tuple[Items, int]:
    return await _BATCH_PAGES.read(read, page)


async def read_batch(
    read: TenantRead, batch_id: uuid.UUID
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The batch (with its `report_key`) and its statements in upload order, in one round
    trip; `NotFound` for a batch of another org or none."""

    def plan(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "id": batch_id}
        return [(repository.BATCH.query, values), (repository.STATEMENTS.query, values)]

    batches, statements = await read.fetch(plan)
    if not batches:
        raise NotFound("Batch not found")
    return repository.BATCH.items(batches)[0], repository.STATEMENTS.items(statements)


async def read_report_key(read: TenantRead, batch_id: uuid.UUID) -> str | None:
    """The batch's workbook key (None until it is built); `NotFound` as `read_batch`."""
    found = await read_items(
        read,
        lambda principal: (repository.REPORT_KEY, {"org_id": principal.org_id, "id": batch_id}),
    )
    if not found:
        raise NotFound("Batch not found")
    key: str | None = found[0]["report_key"]
    return key


async def read_analysis(read: TenantRead, batch_id: uuid.UUID) -> dict[str, Any]:
    """The underwriting analysis of a finished batch, as its last workbook build stored it
    (overrides included: they rebuild it), in one round trip; `NotFound` as `read_batch`,
    `Conflict` until the batch has finished, as its workbook. A batch finished before
    analyses were stored has it computed from its rows, in a second round trip."""

    def batch(principal: Principal) -> Statements:
        return [(repository.BATCH_ANALYSIS.query, {"org_id": principal.org_id, "id": batch_id})]

    def rows(principal: Principal) -> Statements:
        values = {"org_id": principal.org_id, "id": batch_id}
        return [
            (repository.ANALYSED_STATEMENTS.query, values),
            (repository.ANALYSED_ROWS.query, values),
        ]

    (found,) = await read.fetch(batch)
    if not found:
        raise NotFound("Batch not found")
    status, stored = found[0]
    if status not in COMPLETED:
        raise Conflict("The analysis is not ready yet; follow the batch's job")
    if stored is not None:
        return cast(dict[str, Any], stored)
    statements, transactions = await read.fetch(rows)
    analysed = await asyncio.to_thread(_analyse_rows, statements, transactions)
    return AnalysisOut.document(batch_id, analysed)


def _analyse_rows(statements: Rows, rows: Rows) -> BatchAnalysis:
    by_statement: dict[uuid.UUID, list[Any]] = {}
    for statement_id, *fields in rows:
        by_statement.setdefault(statement_id, []).append(stored_transaction(*fields))
    inputs = [
        stored_statement(filename, status, meta, by_statement.get(statement_id, []))
        for statement_id, filename, status, meta in statements
        if status in FINAL_STATES
    ]
    return analyse(analysis_records(inputs))


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

    def values(self) -> dict[str, Any]:
        """The filters by condition name (`_TRANSACTION_FILTERS`); None: not filtered. An
        empty category or text filters nothing."""
        pattern = None
        if self.text:
            escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
        return {
            "statement_id": self.statement_id,
            "date_from": self.date_from,
            "date_to": self.date_to,
            "min_amount": self.min_amount,
            "max_amount": self.max_amount,
            "category": self.category or None,
            "pattern": pattern,
        }


_TRANSACTION_FILTERS: dict[str, Condition] = {
    "batch_id": lambda batch: StatementTransaction.batch_id == batch,  # always present
    "statement_id": lambda statement: StatementTransaction.statement_id == statement,
    "date_from": lambda start: StatementTransaction.txn_date >= start,
    "date_to": lambda end: StatementTransaction.txn_date <= end,
    "min_amount": lambda least: func.abs(StatementTransaction.amount) >= least,
    "max_amount": lambda most: func.abs(StatementTransaction.amount) <= most,
    "category": lambda category: StatementTransaction.category == category,
    "pattern": lambda pattern: StatementTransaction.description.ilike(pattern),
}
_TRANSACTION_PAGES = PageShape(
    select(*columns_for(TransactionOut, StatementTransaction)).where(
        StatementTransaction.org_id == bindparam("org_id")
    ),
    _TRANSACTION_FILTERS,
    {
        "txn_date": StatementTransaction.txn_date,
        "amount": StatementTransaction.amount,
        "row": StatementTransaction.row,
    },
    "txn_date",
    StatementTransaction.statement_id,
    StatementTransaction.row,
    item=TransactionOut,
)


def _batch_exists(
    principal: Principal, batch_id: uuid.UUID
) -> tuple[CompiledQuery, dict[str, Any]]:
    return repository.BATCH_EXISTS.query, {"org_id": principal.org_id, "id": batch_id}


def _values(principal: Principal, batch_id: uuid.UUID, where: TransactionFilter) -> dict[str, Any]:
    return {"org_id": principal.org_id, "batch_id": batch_id, **where.values()}


async def list_transactions(
    read: TenantRead, batch_id: uuid.UUID, where: TransactionFilter, page: PageParams
) -> tuple[Items, int] | None:
    """A page of the batch's matching transactions and their total, read with the batch in
    one round trip; None when the org has no such batch (the router answers 404 after
    checking the range)."""
    planned: list[PageQueries] = []  # the last one is the plan whose rows were kept

    def plan(principal: Principal) -> Statements:
        queries, values = _TRANSACTION_PAGES.plan(_values(principal, batch_id, where), page.sort)
        planned.append(queries)
        return [_batch_exists(principal, batch_id), *queries.statements(values, page)]

    found, *listed = await read.fetch(plan)
    if not found:
        return None
    items, total = planned[-1].items(listed)
    assert total is not None  # a plain list counts in a statement of its own
    return items, total


EXPORT_LIMIT = 200_000
EXPORT_COLUMNS = (
    "statement_id",
    "row",
    "txn_date",
    "description",
    "amount",
    "balance",
    "category",
    "counterparty",
    "recurring",
)


@functools.lru_cache(maxsize=256)
def _export_query(filters: frozenset[str]) -> CompiledQuery:
    """The export's query for the filters present, compiled once per combination."""
    query = select(*(getattr(StatementTransaction, name) for name in EXPORT_COLUMNS)).where(
        StatementTransaction.org_id == bindparam("org_id")
    )
    for name in sorted(filters):
        query = query.where(_TRANSACTION_FILTERS[name](bindparam(name)))
    order = (StatementTransaction.statement_id, StatementTransaction.row)
    return compile_query(query.order_by(*order).limit(EXPORT_LIMIT))


async def all_transactions(
    read: TenantRead, batch_id: uuid.UUID, where: TransactionFilter
) -> Rows | None:
    """Every match, in statement order, for a CSV export (bounded: a batch is bounded too):
    rows of `EXPORT_COLUMNS`, read with the batch in one round trip; None as
    `list_transactions`."""

    def plan(principal: Principal) -> Statements:
        values = {k: v for k, v in _values(principal, batch_id, where).items() if v is not None}
        query = _export_query(frozenset(values.keys() - {"org_id"}))
        return [_batch_exists(principal, batch_id), (query, values)]

    found, rows = await read.fetch(plan)
    return rows if found else None


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


async def list_rules(read: TenantRead) -> list[dict[str, Any]]:
    return await read_items(
        read, lambda principal: (repository.RULES, {"org_id": principal.org_id})
    )


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
