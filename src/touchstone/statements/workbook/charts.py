"""The workbook's charts: money in and out per month and by category, and daily balances.

Each chart plots one currency (the batch's main one) and is drawn from the cells of the
sheet it sits on, so a filter or an edit in Excel redraws it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

MAX_CHART_SERIES = 8
IN_OUT_COLOURS = {2: "#2E7D32", 3: "#C62828"}  # credits green, debits red
_ISO_CURRENCY = re.compile(r"[A-Z]{3}")


def chart_title(title: str, currency: str | None) -> dict[str, str]:
    """XlsxWriter reads a chart name shaped like "x!A1" as a cell reference, so only an
    ISO-looking currency code from the statement goes into a title."""
    code = currency if currency and _ISO_CURRENCY.fullmatch(currency) else ""
    return {"name": f"{title} {code}".strip()}


def rows_of(keys: Sequence[tuple[str, Any]], currency: str | None) -> tuple[int, int] | None:
    """The sheet rows of the main currency (charts plot one currency)."""
    chosen = [i for i, (cur, _) in enumerate(keys, start=1) if cur == currency]
    return (chosen[0], chosen[-1]) if chosen else None


def add_in_out(chart: Any, sheet: str, first: int, last: int, columns: tuple[int, int]) -> None:
    for col in columns:
        chart.add_series(
            {
                "name": [sheet, 0, col],
                "categories": [sheet, first, 1, last, 1],
                "values": [sheet, first, col, last, col],
                "fill": {"color": IN_OUT_COLOURS[col]},
            }
        )


def monthly(book: Any, sheet: Any, first: int, last: int, currency: str | None) -> None:
    """Credits and debits as columns, the net as a line, on the Monthly sheet."""
    chart = book.add_chart({"type": "column"})
    add_in_out(chart, "Monthly", first, last, (2, 3))
    net = book.add_chart({"type": "line"})
    net.add_series(
        {
            "name": ["Monthly", 0, 4],
            "categories": ["Monthly", first, 1, last, 1],
            "values": ["Monthly", first, 4, last, 4],
            "line": {"color": "#1F3864"},
        }
    )
    chart.combine(net)
    chart.set_title(chart_title("Credits and debits per month", currency))
    chart.set_x_axis({"num_format": "mmm yy"})
    chart.set_size({"width": 760, "height": 360})
    sheet.insert_chart("I2", chart)


def by_category(book: Any, sheet: Any, first: int, last: int, currency: str | None) -> None:
    """Money in and out per category as bars, biggest spending first, on Categories."""
    chart = book.add_chart({"type": "bar"})
    add_in_out(chart, "Categories", first, last, (3, 2))
    chart.set_title(chart_title("Money in and out by category", currency))
    chart.set_y_axis({"reverse": True})
    chart.set_size({"width": 760, "height": max(360, 22 * (last - first + 1))})
    sheet.insert_chart("I2", chart)


def daily_balances(book: Any, sheet: Any, spans: Sequence[tuple[int, int]]) -> None:
    """One line per statement (the first MAX_CHART_SERIES), from its rows `spans`."""
    chart = book.add_chart({"type": "line"})
    for first, last in spans[:MAX_CHART_SERIES]:
        chart.add_series(
            {
                "name": ["Daily balances", first, 0],  # a cell: a file name is no formula
                "categories": ["Daily balances", first, 1, last, 1],
                "values": ["Daily balances", first, 4, last, 4],
            }
        )
    chart.set_title({"name": "End-of-day balance"})
    chart.set_x_axis({"date_axis": True, "num_format": "dd mmm yy"})
    chart.set_size({"width": 760, "height": 360})
    sheet.insert_chart("G2", chart)
