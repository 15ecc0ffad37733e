"""The sheets about where money went and when: Monthly, Categories, Top counterparties in
and out, and Daily balances, each per currency."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from touchstone.statements.domain import Direction
from touchstone.statements.workbook import charts
from touchstone.statements.workbook.charts import rows_of
from touchstone.statements.workbook.inputs import (
    Row,
    WorkbookInput,
    currency,
    main_currency,
    statement_label,
)
from touchstone.statements.workbook.writer import (
    Column,
    Totals,
    Writer,
    totals_columns,
    totals_lines,
)


def write_monthly(writer: Writer, rows: Sequence[Row]) -> None:
    months: defaultdict[tuple[str, dt.date], Totals] = defaultdict(Totals)
    for row in rows:
        day = row.item.transaction.date
        months[currency(row.statement), day.replace(day=1)].add(row.item.transaction.amount, day)
    keys = sorted(months)
    columns = totals_columns(
        Column("Month", 12, "month"), ("Credits", "Debits"), ("Credit count", "Debit count"), 10
    )
    sheet, _ = writer.table("Monthly", columns, totals_lines(keys, months))
    main = main_currency(rows)
    span = rows_of(keys, main)
    if span is not None:
        charts.monthly(writer.book, sheet, *span, main)


def write_categories(writer: Writer, rows: Sequence[Row]) -> None:
    groups: defaultdict[tuple[str, str], Totals] = defaultdict(Totals)
    for row in rows:
        key = (currency(row.statement), row.item.category)
        groups[key].add(row.item.transaction.amount, row.item.transaction.date)
    keys = sorted(groups, key=lambda k: (k[0], -groups[k].debits, -groups[k].credits, k[1]))
    columns = totals_columns(
        Column("Category", 20), ("Money in", "Money out"), ("Count in", "Count out"), 9
    )
    sheet, _ = writer.table("Categories", columns, totals_lines(keys, groups))
    main = main_currency(rows)
    span = rows_of(keys, main)
    if span is not None:
        charts.by_category(writer.book, sheet, *span, main)


def write_counterparties(writer: Writer, rows: Sequence[Row], report: WorkbookInput) -> None:
    for name, direction in (
        ("Top counterparties in", Direction.CREDIT),
        ("Top counterparties out", Direction.DEBIT),
    ):
        parties: defaultdict[tuple[str, str], Totals] = defaultdict(Totals)
        for row in rows:
            txn = row.item.transaction
            if row.item.counterparty and txn.direction is direction:
                parties[currency(row.statement), row.item.counterparty].add(txn.amount, txn.date)
        by_currency: defaultdict[str, list[tuple[str, Totals]]] = defaultdict(list)
        for (cur, party), totals in parties.items():
            by_currency[cur].append((party, totals))
        lines = []
        for cur in sorted(by_currency):
            # Rows were filtered by direction, so one side of each total is zero.
            entries = [(party, t.credits + t.debits, t) for party, t in by_currency[cur]]
            whole = sum((total for _, total, _ in entries), Decimal(0))
            entries.sort(key=lambda e: (-e[1], e[0]))
            for party, total, totals in entries[: report.top_counterparties]:
                lines.append(
                    (
                        cur,
                        party,
                        total,
                        totals.credit_count + totals.debit_count,
                        total / whole if whole else None,
                        totals.first,
                        totals.last,
                    )
                )
        columns = (
            Column("Currency", 9),
            Column("Counterparty", 32),
            Column("Total", 15, "money"),
            Column("Transactions", 12, "int"),
            Column("Share", 9, "percent"),
            Column("First", 12, "date"),
            Column("Last", 12, "date"),
        )
        writer.table(name, columns, lines)


def write_daily_balances(writer: Writer, report: WorkbookInput) -> None:
    columns = (
        Column("Statement", 24),
        Column("Date", 12, "date"),
        Column("Credits", 15, "money"),
        Column("Debits", 15, "money"),
        Column("End-of-day balance", 18, "money"),
    )
    lines: list[tuple[Any, ...]] = []
    spans: list[tuple[int, int]] = []  # first and last sheet row of each statement
    for statement in report.statements:
        running = statement.meta.opening_balance
        days: dict[dt.date, Totals] = {}
        closing: dict[dt.date, Decimal | None] = {}
        for item in sorted(statement.transactions, key=lambda i: i.transaction.row):
            txn = item.transaction
            if txn.balance is not None:
                running = txn.balance
            elif running is not None:
                running += txn.amount
            days.setdefault(txn.date, Totals()).add(txn.amount, txn.date)
            closing[txn.date] = running
        if not days:
            continue
        label = statement_label(statement)
        start = len(lines) + 1
        for day in sorted(days):
            lines.append((label, day, days[day].credits, days[day].debits, closing[day]))
        spans.append((start, len(lines)))
    sheet, _ = writer.table("Daily balances", columns, lines)
    if spans:
        charts.daily_balances(writer.book, sheet, spans)
