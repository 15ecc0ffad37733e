"""Statements reads (`core.reads`): compiled once at import, bound per request.

Each query filters by org explicitly even though row-level security would too. The
statements module applies no branch scope: a batch belongs to the org.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BindParameter, bindparam, func, or_, select

from touchstone.core.reads import CompiledQuery, columns_for, compile_query, item_query, row_query
from touchstone.core.schemas import OutputModel
from touchstone.statements.models import (
    Batch,
    CategoryRule,
    Statement,
    StatementTransaction,
    Subscription,
    UsageEvent,
)
from touchstone.statements.processing import PAGES, STORED_TRANSACTION
from touchstone.statements.schemas import RuleOut, StatementOut

_ORG: BindParameter[uuid.UUID] = bindparam("org_id")
_ID: BindParameter[uuid.UUID] = bindparam("id")


class BatchRow(OutputModel):
    """A batch as `GET /batches/{id}` reads it: `BatchOut`'s own columns and the workbook's
    storage key (turned into a signed link, never shown)."""

    id: uuid.UUID
    label: str
    status: str
    job_id: uuid.UUID | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    summary: dict[str, Any]
    error_code: str | None
    error_detail: str | None
    report_key: str | None


class ReportKey(OutputModel):
    report_key: str | None


class BatchId(OutputModel):
    id: uuid.UUID


BATCH = item_query(
    select(*columns_for(BatchRow, Batch)).where(Batch.org_id == _ORG, Batch.id == _ID), BatchRow
)
STATEMENTS = item_query(
    select(*columns_for(StatementOut, Statement))
    .where(Statement.batch_id == _ID, Statement.org_id == _ORG)
    .order_by(Statement.position),
    StatementOut,
)
"""The batch's statements, in upload order (`_ID` is the batch's id)."""
BATCH_EXISTS = item_query(select(Batch.id).where(Batch.id == _ID, Batch.org_id == _ORG), BatchId)
REPORT_KEY = item_query(
    select(Batch.report_key).where(Batch.id == _ID, Batch.org_id == _ORG), ReportKey
)
BATCH_ANALYSIS = row_query(
    select(Batch.status, Batch.analysis).where(Batch.id == _ID, Batch.org_id == _ORG)
)
"""A batch's status and its stored analysis (`_ID`: the batch)."""
ANALYSED_STATEMENTS = row_query(
    select(Statement.id, Statement.filename, Statement.status, Statement.meta)
    .where(Statement.batch_id == _ID, Statement.org_id == _ORG)
    .order_by(Statement.position)
)
"""What the analysis needs of the batch's statements, in upload order (`_ID`: the batch)."""
ANALYSED_ROWS = row_query(
    select(
        StatementTransaction.statement_id,
        *(getattr(StatementTransaction, name) for name in STORED_TRANSACTION),
    )
    .where(StatementTransaction.batch_id == _ID, StatementTransaction.org_id == _ORG)
    .order_by(StatementTransaction.statement_id, StatementTransaction.row)
)
"""Every row of the batch, as `processing.stored_transaction` takes them after the id."""
RULES = item_query(
    select(*columns_for(RuleOut, CategoryRule))
    .where(CategoryRule.org_id == _ORG)
    .order_by(CategoryRule.name),
    RuleOut,
)

# `or_` rather than `in_`: an IN list compiles to a parameter expanded per execution, which a
# statement compiled once cannot carry.
PLAN: CompiledQuery = compile_query(
    select(Subscription.plan).where(
        Subscription.org_id == _ORG,
        or_(Subscription.status == "active", Subscription.status == "trialing"),
    )
)
"""The org's plan while its subscription is in force (at most one row: one per org)."""
PAGES_USED: CompiledQuery = compile_query(
    select(func.coalesce(func.sum(UsageEvent.quantity), 0)).where(
        UsageEvent.org_id == _ORG,
        UsageEvent.metric == PAGES,
        UsageEvent.occurred_at >= bindparam("since"),
    )
)
"""Pages metered since `since` (the month's start)."""
