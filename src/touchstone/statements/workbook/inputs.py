"""What the workbook is built from, and how it names a statement without leaking a number.

The account number is re-masked here, and long digit runs in file names masked, in case a
full number slipped through: the workbook leaves the building.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from touchstone.statements.analysis import StatementRecords
from touchstone.statements.domain import (
    CategorisedTransaction,
    PageReport,
    StatementMeta,
    StatementStatus,
    ValidationIssue,
    mask_account_number,
)

_LONG_DIGITS = re.compile(r"\d{9,}")  # account-number sized; dates (8 digits) stay readable


@dataclass(frozen=True, slots=True)
class StatementInput:
    """One statement of the batch, as extracted, validated and categorised."""

    filename: str
    meta: StatementMeta
    status: StatementStatus
    transactions: Sequence[CategorisedTransaction] = ()
    pages: Sequence[PageReport] = ()
    issues: Sequence[ValidationIssue] = ()


@dataclass(frozen=True, slots=True)
class ContinuityIssue:
    """A break between statements, e.g. one's closing balance is not the next one's opening."""

    message: str
    filenames: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkbookInput:
    """What the workbook shows. `large_threshold` is an absolute amount; when None, a row is
    large when it is in its statement's top 1% by absolute amount and at least
    `large_median_multiple` times the statement's median absolute amount."""

    batch_label: str
    generated_at: dt.datetime
    statements: Sequence[StatementInput] = ()
    continuity_issues: Sequence[ContinuityIssue] = ()
    large_threshold: Decimal | None = None
    large_median_multiple: Decimal = Decimal(5)
    top_counterparties: int = 25


@dataclass(slots=True)
class Row:
    """One transaction with the statement it came from."""

    statement: StatementInput
    label: str
    item: CategorisedTransaction
    recurring: bool


def mask_digits(text: str) -> str:
    """Keep only the last four digits of any account-number-sized run of digits."""
    return _LONG_DIGITS.sub(lambda m: "X" * (len(m[0]) - 4) + m[0][-4:], text)


def masked_account(value: str | None) -> str | None:
    """Masked again here: the workbook leaves the building, whatever reached the meta."""
    return mask_account_number(value) if value and len(re.sub(r"\D", "", value)) > 4 else value


def statement_label(statement: StatementInput) -> str:
    return mask_digits(statement.filename)


def currency(statement: StatementInput) -> str:
    return statement.meta.currency or ""


def main_currency(rows: Sequence[Row]) -> str | None:
    counts = Counter(currency(r.statement) for r in rows)
    return counts.most_common(1)[0][0] if counts else None


def account_of(statement: StatementInput) -> str:
    """Statements of one account share its bank and masked number; a statement without a
    number is an account of its own."""
    number = masked_account(statement.meta.account_number_masked)
    if not number:
        return statement_label(statement)
    return mask_digits(" ".join(part for part in (statement.meta.bank_name, number) if part))


def analysis_records(statements: Sequence[StatementInput]) -> list[StatementRecords]:
    """The analysis's view of the batch, named as the workbook and the API may show it."""
    return [
        StatementRecords(
            name=statement_label(s),
            account=account_of(s),
            transactions=s.transactions,
            currency=s.meta.currency,
            period_start=s.meta.period_start,
            period_end=s.meta.period_end,
            opening_balance=s.meta.opening_balance,
        )
        for s in statements
        if s.status is not StatementStatus.FAILED
    ]
