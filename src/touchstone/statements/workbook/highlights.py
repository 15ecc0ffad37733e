"""The sheets that single rows out: Recurring payments, Large transactions, and one sheet
per theme (cash, transfers and cheques, returns, fees, income, loans) chosen by the default
rules' categories."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from decimal import Decimal

from touchstone.statements.categorise import RecurringGroup
from touchstone.statements.categorise import categories as cat
from touchstone.statements.workbook.inputs import Row, WorkbookInput
from touchstone.statements.workbook.writer import Column, Writer

# Rows of the themed sheets, chosen by the default rules' categories.
THEMED_SHEETS: dict[str, frozenset[str]] = {
    "Cash": frozenset({cat.CASH_WITHDRAWAL, cat.CASH_DEPOSIT}),
    "Transfers and cheques": frozenset({cat.TRANSFER, cat.CHEQUE}),
    "Returned items": frozenset({cat.RETURNED}),
    "Fees and charges": frozenset({cat.FEES_CHARGES}),
    "Income": frozenset(
        {cat.SALARY, cat.PENSION_BENEFITS, cat.DIVIDEND, cat.RENTAL_INCOME, cat.INTEREST}
    ),
    "Loans and EMI": frozenset({cat.LOAN_EMI}),
}
CREDITS_ONLY = frozenset({"Income"})
LARGE_TOP_SHARE = 0.99  # quantile of absolute amounts
THEMED_COLUMNS = (
    Column("Statement", 24),
    Column("Date", 12, "date"),
    Column("Description", 48),
    Column("Counterparty", 26),
    Column("Category", 16),
    Column("Amount", 15, "money"),
)


def write_recurring(
    writer: Writer, groups: Sequence[RecurringGroup], currency_of: dict[int, str]
) -> None:
    columns = (
        Column("Counterparty", 32),
        Column("Direction", 9),
        Column("Category", 16),
        Column("Currency", 9),
        Column("Interval", 11),
        Column("Median days", 11, "days"),
        Column("Typical amount", 15, "money"),
        Column("Occurrences", 11, "int"),
        Column("Total", 15, "money"),
        Column("First", 12, "date"),
        Column("Last", 12, "date"),
    )
    writer.table(
        "Recurring payments",
        columns,
        (
            (
                g.counterparty,
                g.direction.value,
                g.category,
                currency_of.get(id(g.members[0]), ""),
                g.interval,
                g.interval_days,
                g.typical_amount,
                g.count,
                g.total,
                g.first_date,
                g.last_date,
            )
            for g in groups
        ),
    )


def write_large(writer: Writer, rows: Sequence[Row], report: WorkbookInput) -> None:
    thresholds: dict[int, Decimal] = {}
    for statement in report.statements:
        if report.large_threshold is not None:
            thresholds[id(statement)] = report.large_threshold
        elif statement.transactions:
            sizes = sorted(abs(i.transaction.amount) for i in statement.transactions)
            top_share = sizes[int(len(sizes) * LARGE_TOP_SHARE)]
            median = statistics.median(sizes)
            thresholds[id(statement)] = max(top_share, median * report.large_median_multiple)
    chosen = [
        r
        for r in rows
        if abs(r.item.transaction.amount) >= thresholds[id(r.statement)]
        and r.item.transaction.amount
    ]
    chosen.sort(key=lambda r: (-abs(r.item.transaction.amount), r.label, r.item.transaction.row))
    columns = (
        Column("Statement", 24),
        Column("Date", 12, "date"),
        Column("Description", 48),
        Column("Counterparty", 26),
        Column("Category", 16),
        Column("Amount", 15, "money"),
        Column("Balance", 15, "money"),
        Column("Threshold", 15, "money"),
    )
    writer.table(
        "Large transactions",
        columns,
        (
            (
                r.label,
                r.item.transaction.date,
                r.item.transaction.description,
                r.item.counterparty,
                r.item.category,
                r.item.transaction.amount,
                r.item.transaction.balance,
                thresholds[id(r.statement)],
            )
            for r in chosen
        ),
    )


def write_themed(writer: Writer, rows: Sequence[Row]) -> None:
    for name, categories in THEMED_SHEETS.items():
        credits_only = name in CREDITS_ONLY
        writer.table(
            name,
            THEMED_COLUMNS,
            (
                (
                    r.label,
                    r.item.transaction.date,
                    r.item.transaction.description,
                    r.item.counterparty,
                    r.item.category,
                    r.item.transaction.amount,
                )
                for r in rows
                if r.item.category in categories
                and not (credits_only and r.item.transaction.amount < 0)
            ),
        )
