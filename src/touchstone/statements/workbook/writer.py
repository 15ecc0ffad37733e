"""What every sheet is built from: columns, running totals and a writer of typed cells.

Every text cell goes through `write_string` (never `write`, never a formula), and one that
starts like a formula also gets Excel's quote prefix, so "=HYPERLINK(...)" stays text even
after an edit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
EXCEL_EPOCH = dt.date(1899, 12, 30)  # day 0 of Excel's 1900 date system
BOOK_OPTIONS = {
    "in_memory": True,
    "strings_to_formulas": False,
    "strings_to_numbers": False,
    "strings_to_urls": False,
}


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a sheet: its header, its width and how its cells are formatted."""

    title: str
    width: float
    kind: str = "text"  # text, money, date, month, int, percent, days, bool


@dataclass(slots=True)
class Totals:
    """Money in and out, their counts, and the first and last day of a group of rows (a
    statement, a month, a category, a counterparty, a day)."""

    credits: Decimal = Decimal(0)
    debits: Decimal = Decimal(0)
    credit_count: int = 0
    debit_count: int = 0
    first: dt.date | None = None
    last: dt.date | None = None

    def add(self, amount: Decimal, day: dt.date) -> None:
        if amount > 0:
            self.credits += amount
            self.credit_count += 1
        elif amount < 0:
            self.debits -= amount
            self.debit_count += 1
        self.first = day if self.first is None else min(self.first, day)
        self.last = day if self.last is None else max(self.last, day)


class Writer:
    """Formats and typed cell writers shared by every sheet."""

    def __init__(self, book: Any) -> None:
        self.book = book
        self.header = book.add_format(
            {"bold": True, "bg_color": "#1F3864", "font_color": "#FFFFFF", "text_wrap": True}
        )
        self.title = book.add_format({"bold": True, "font_size": 14})
        self.quoted = book.add_format({"quote_prefix": True})
        self.kinds = {
            "money": book.add_format({"num_format": "#,##0.00"}),
            "date": book.add_format({"num_format": "dd mmm yyyy"}),
            "month": book.add_format({"num_format": "mmm yyyy"}),
            "int": book.add_format({"num_format": "#,##0"}),
            "percent": book.add_format({"num_format": "0.0%"}),
            "days": book.add_format({"num_format": "0.0"}),
        }

    def text(self, sheet: Any, row: int, col: int, value: str) -> None:
        if value.startswith(FORMULA_LEADS):
            sheet.write_string(row, col, value, self.quoted)
        else:
            sheet.write_string(row, col, value)

    def table(
        self, name: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]], top: int = 0
    ) -> tuple[Any, int]:
        """A sheet (or the part below `top`) with a frozen header, a filter and typed cells;
        returns the sheet and the number of data rows written.

        The cell loop dispatches on the value's type rather than per column through helper
        calls: it runs for every cell of the Transactions sheet and dominates the build.
        """
        sheet = self.book.get_worksheet_by_name(name) or self.book.add_worksheet(name)
        for col, column in enumerate(columns):
            sheet.set_column(col, col, column.width, self.kinds.get(column.kind))
        for col, column in enumerate(columns):
            sheet.write_string(top, col, column.title, self.header)
        date_formats = [self.kinds["month" if c.kind == "month" else "date"] for c in columns]
        write_string, write_number = sheet.write_string, sheet.write_number
        write_datetime, write_boolean = sheet.write_datetime, sheet.write_boolean
        quoted, leads = self.quoted, FORMULA_LEADS
        serials: dict[dt.date, int] = {}  # Excel stores a date as its day number
        row = top
        for values in rows:
            row += 1
            for col, value in enumerate(values):
                kind = type(value)
                if kind is str:  # XlsxWriter cuts text at Excel's 32,767 limit itself
                    if value.startswith(leads):
                        write_string(row, col, value, quoted)
                    else:
                        write_string(row, col, value)
                elif kind is Decimal or kind is int or kind is float:
                    write_number(row, col, float(value))
                elif kind is dt.date:
                    serial = serials.get(value)
                    if serial is None:
                        serial = serials[value] = (value - EXCEL_EPOCH).days
                    write_number(row, col, serial, date_formats[col])
                elif kind is bool:
                    write_boolean(row, col, value)
                elif isinstance(value, dt.date):
                    write_datetime(row, col, value, date_formats[col])
                elif value is not None:
                    raise TypeError(f"{name}: cannot write a {kind.__name__}")
        sheet.freeze_panes(top + 1, 0)
        sheet.autofilter(top, 0, max(row, top + 1), len(columns) - 1)
        return sheet, row - top


def debit_credit(amount: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """Two columns, one left blank, as statements print them."""
    return (-amount, None) if amount < 0 else (None, amount or None)


def totals_columns(
    key: Column, money: tuple[str, str], counts: tuple[str, str], count_width: int
) -> tuple[Column, ...]:
    """Currency, the key, money in/out, net and the two counts (Monthly and Categories)."""
    return (
        Column("Currency", 9),
        key,
        Column(money[0], 15, "money"),
        Column(money[1], 15, "money"),
        Column("Net", 15, "money"),
        Column(counts[0], count_width, "int"),
        Column(counts[1], count_width, "int"),
    )


def totals_lines(
    keys: Sequence[tuple[str, Any]], totals: Mapping[tuple[str, Any], Totals]
) -> list[tuple[Any, ...]]:
    return [
        (cur, key, t.credits, t.debits, t.credits - t.debits, t.credit_count, t.debit_count)
        for cur, key in keys
        for t in (totals[cur, key],)
    ]
