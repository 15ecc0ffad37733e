"""The sheets about the batch itself: Summary, Transactions, Validation issues and Flagged
pages (what was read, and what an analyst should double-check)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from touchstone.statements.workbook.inputs import (
    Row,
    WorkbookInput,
    mask_digits,
    masked_account,
    statement_label,
)
from touchstone.statements.workbook.writer import Column, Totals, Writer, debit_credit

TRANSACTION_COLUMNS = (
    Column("Statement", 24),
    Column("Page", 6, "int"),
    Column("Date", 12, "date"),
    Column("Description", 48),
    Column("Counterparty", 26),
    Column("Category", 16),
    Column("Debit", 14, "money"),
    Column("Credit", 14, "money"),
    Column("Balance", 15, "money"),
    Column("Recurring", 10, "bool"),
)


def write_summary(writer: Writer, report: WorkbookInput, recurring: set[int]) -> None:
    sheet = writer.book.add_worksheet("Summary")
    sheet.write_string(0, 0, "Statement analysis", writer.title)
    writer.text(sheet, 1, 0, f"Batch: {report.batch_label}")
    writer.text(sheet, 2, 0, f"Generated: {report.generated_at.isoformat(timespec='seconds')}")
    columns = (
        Column("Statement", 24),
        Column("Bank", 18),
        Column("Account holder", 22),
        Column("Account", 12),
        Column("Currency", 9),
        Column("Period start", 12, "date"),
        Column("Period end", 12, "date"),
        Column("Opening balance", 15, "money"),
        Column("Closing balance", 15, "money"),
        Column("Total credits", 15, "money"),
        Column("Total debits", 15, "money"),
        Column("Credits", 9, "int"),
        Column("Debits", 9, "int"),
        Column("Transactions", 12, "int"),
        Column("Recurring", 10, "int"),
        Column("Pages", 8, "int"),
        Column("Flagged pages", 9, "int"),
        Column("Issues", 8, "int"),
        Column("Status", 10),
    )
    lines = []
    for statement in report.statements:
        meta, totals = statement.meta, Totals()
        for item in statement.transactions:
            totals.add(item.transaction.amount, item.transaction.date)
        lines.append(
            (
                statement_label(statement),
                meta.bank_name,
                meta.holder_name,
                masked_account(meta.account_number_masked),
                meta.currency,
                meta.period_start,
                meta.period_end,
                meta.opening_balance,
                meta.closing_balance,
                totals.credits,
                totals.debits,
                totals.credit_count,
                totals.debit_count,
                len(statement.transactions),
                sum(id(item) in recurring for item in statement.transactions),
                len(statement.pages),
                sum(page.flagged for page in statement.pages),
                len(statement.issues),
                statement.status.value,
            )
        )
    writer.table("Summary", columns, lines, top=4)


def write_transactions(writer: Writer, rows: Sequence[Row]) -> None:
    writer.table(
        "Transactions",
        TRANSACTION_COLUMNS,
        (
            (
                row.label,
                row.item.transaction.page,
                row.item.transaction.date,
                row.item.transaction.description,
                row.item.counterparty,
                row.item.category,
                *debit_credit(row.item.transaction.amount),
                row.item.transaction.balance,
                True if row.recurring else None,
            )
            for row in rows
        ),
    )


def write_validation(writer: Writer, report: WorkbookInput) -> None:
    columns = (
        Column("Statement", 30),
        Column("Row", 7, "int"),
        Column("Date", 12, "date"),
        Column("Description", 40),
        Column("Issue", 70),
    )
    lines: list[tuple[Any, ...]] = []
    for statement in report.statements:
        by_row = {i.transaction.row: i.transaction for i in statement.transactions}
        for issue in statement.issues:
            txn = None if issue.row is None else by_row.get(issue.row)
            lines.append(
                (
                    statement_label(statement),
                    issue.row,
                    None if txn is None else txn.date,
                    None if txn is None else txn.description,
                    issue.message,
                )
            )
    for gap in report.continuity_issues:
        names = " / ".join(mask_digits(name) for name in gap.filenames) or "across statements"
        lines.append((names, None, None, None, gap.message))
    writer.table("Validation issues", columns, lines)


def write_flagged_pages(writer: Writer, report: WorkbookInput) -> None:
    columns = (
        Column("Statement", 30),
        Column("Page", 7, "int"),
        Column("Rows read", 9, "int"),
        Column("Strategy tried", 14),
        Column("Why it was rejected", 70),
    )
    lines: list[tuple[Any, ...]] = []
    for statement in report.statements:
        for page in statement.pages:
            if not page.flagged:
                continue
            reasons = sorted(page.rejected.items()) or [("", "no reason recorded")]
            for strategy, reason in reasons:
                lines.append((statement_label(statement), page.page, page.rows, strategy, reason))
    writer.table("Flagged pages", columns, lines)
