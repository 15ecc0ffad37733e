"""Other national conventions, drawn here by small renderers (unit tests only, never the
basis for a figure): Indian Dr/Cr balances in lakh grouping, German S/H amounts with
year-less dates across a year end, a US card with day-end balance and no header."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from fpdf import FPDF

from touchstone.statements.domain import StatementStatus
from touchstone.statements.extraction import ExtractionLimits, extract_statement

LIMITS = ExtractionLimits()


def _render(lines: list[list[tuple[float, str, str]]]) -> bytes:
    """Each line is cells of (x in mm, text, align 'L' or 'R' at x)."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=9)
    y = 15.0
    for cells in lines:
        for x, text, align in cells:
            width = pdf.get_string_width(text)
            pdf.text(x - width if align == "R" else x, y, text)
        y += 5.5
    return bytes(pdf.output())


def test_indian_lakh_with_dr_cr_balances() -> None:
    rows = [
        ("01/04/2025", "NEFT SALARY ACME PVT LTD", None, "1,25,000.00", "13,45,678.50 Cr"),
        ("03/04/2025", "EMI HDFC LOAN 4411", "32,500.00", None, "13,13,178.50 Cr"),
        ("05/04/2025", "ATM CASH WDL", "20,000.00", None, "12,93,178.50 Cr"),
    ]
    lines = [
        [(10, "Statement of Account", "L")],
        [(10, "Period: 01/04/2025 to 30/04/2025", "L")],
        [(10, "Opening Balance 12,20,678.50 Cr", "L")],
        [
            (10, "Date", "L"),
            (35, "Narration", "L"),
            (130, "Withdrawal", "R"),
            (160, "Deposit", "R"),
            (195, "Balance", "R"),
        ],
    ]
    for date, text, out, into, balance in rows:
        cells = [(10, date, "L"), (35, text, "L"), (195, balance, "R")]
        cells += [(130, out, "R")] if out else [(160, into or "", "R")]
        lines.append(cells)
    statement = extract_statement(_render(lines), limits=LIMITS)
    assert statement.status is StatementStatus.VERIFIED, statement.issues
    assert [t.amount for t in statement.transactions] == [
        Decimal("125000.00"),
        Decimal("-32500.00"),
        Decimal("-20000.00"),
    ]


def test_german_s_h_amounts_with_yearless_dates_across_the_year_end() -> None:
    lines = [
        [(10, "Kontoauszug", "L")],
        [(10, "Zeitraum 01.12.2025 bis 31.01.2026", "L")],
        [(10, "Alter Saldo", "L"), (190, "1.000,00 H", "R")],
        [(10, "Buchungstag", "L"), (40, "Verwendungszweck", "L"), (190, "Betrag", "R")],
        [(10, "29.12.", "L"), (40, "Miete Dezember", "L"), (190, "750,00 S", "R")],
        [(10, "02.01.", "L"), (40, "Gehalt Januar", "L"), (190, "2.310,50 H", "R")],
        [(10, "05.01.", "L"), (40, "Lastschrift Strom", "L"), (190, "60,50 S", "R")],
        [(10, "Neuer Saldo", "L"), (190, "2.500,00 H", "R")],
    ]
    statement = extract_statement(_render(lines), limits=LIMITS)
    assert statement.status is StatementStatus.VERIFIED, statement.issues
    assert [(t.date, t.amount) for t in statement.transactions] == [
        (dt.date(2025, 12, 29), Decimal("-750.00")),
        (dt.date(2026, 1, 2), Decimal("2310.50")),
        (dt.date(2026, 1, 5), Decimal("-60.50")),
    ]


def test_a_changed_printed_total_is_not_verified() -> None:
    lines = [
        [(10, "Statement period 01 Mar 2025 to 31 Mar 2025", "L")],
        [(10, "Beginning balance", "L"), (190, "$500.00", "R")],
        [(10, "Date", "L"), (40, "Description", "L"), (150, "Amount", "R"), (190, "Balance", "R")],
        [(10, "03/04", "L"), (40, "Coffee shop", "L"), (150, "-4.50", "R")],
        [
            (10, "03/04", "L"),
            (40, "Payroll deposit", "L"),
            (150, "1,200.00", "R"),
            (190, "1,695.50", "R"),
        ],
        [(10, "03/09", "L"), (40, "Grocery", "L"), (150, "-95.50", "R"), (190, "1,600.00", "R")],
        [(10, "Total deposits", "L"), (190, "1,210.00", "R")],
        [(10, "Ending balance", "L"), (190, "$1,600.00", "R")],
    ]
    statement = extract_statement(_render(lines), limits=LIMITS)
    assert statement.status is StatementStatus.REVIEW
    assert any("Total deposits" in issue.message for issue in statement.issues)
    assert [t.amount for t in statement.transactions] == [
        Decimal("-4.50"),
        Decimal("1200.00"),
        Decimal("-95.50"),
    ]
