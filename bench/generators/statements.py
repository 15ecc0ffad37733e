"""Synthetic bank statements with their ground truth, deterministic from a seed.

Each `Layout` is one way real banks print a statement (ruled or borderless tables, one signed
amount column or debit/credit columns, a balance on every row or only on the day's last row,
European numbers, CR/DR suffixes, dates without a year across a year end...). The extraction
tests and the benchmark read these PDFs and compare what comes back with `transactions`.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import pairwise

import cv2
import numpy as np
import pypdfium2 as pdfium
from fpdf import FPDF
from fpdf.enums import EncryptionMethod

from touchstone.statements.domain import StatementMeta, Transaction
from touchstone.statements.extraction.normalise import format_amount

MARGIN = 10.0
LINE_H = 5.0
PAGE_H = 297.0
TABLE_BOTTOM = 270.0

_MERCHANTS = (
    "TESCO STORES",
    "SAINSBURYS",
    "AMAZON MARKETPLACE",
    "SHELL FUEL",
    "BRITISH GAS",
    "THAMES WATER",
    "NETFLIX",
    "PRET A MANGER",
    "TFL TRAVEL",
    "BOOTS PHARMACY",
    "COUNCIL TAX",
    "VODAFONE",
)
_KINDS = ("CARD PAYMENT TO", "DIRECT DEBIT", "STANDING ORDER", "CONTACTLESS")
_INCOME = ("SALARY ACME LTD", "TRANSFER FROM SAVINGS", "REFUND", "INTEREST PAID")


@dataclass(frozen=True)
class Layout:
    name: str
    ruled: bool = False
    debit_credit: bool = True
    """Separate paid-out / paid-in columns; otherwise one signed amount column."""
    balance_every_row: bool = True
    """Otherwise only the day's last row shows a balance."""
    multiline: bool = False
    date_format: str = "%d/%m/%Y"
    european: bool = False
    negative: str = "minus"
    """How the signed column marks a debit: minus, parens, crdr or trailing."""
    balance_suffix: bool = False
    """Balances printed as `1,234.56 CR` (DR when overdrawn)."""
    currency: str = "GBP"
    symbol: str = ""
    """Prefixed to every amount, e.g. `£`."""
    headers: tuple[str, ...] = ("Date", "Description", "Paid out", "Paid in", "Balance")
    period_line: bool = True
    """Print the statement period; otherwise only the statement date (its last day)."""
    date_once_per_day: bool = False
    """Print a date only on the day's first row (later rows of that day inherit it)."""
    header_on_every_page: bool = True
    transactions: int = 50
    start: dt.date = dt.date(2025, 3, 3)


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("ruled_uk", ruled=True, symbol=""),
        Layout(
            "borderless_signed",
            debit_credit=False,
            date_format="%d %b %Y",
            headers=("Date", "Details", "Amount", "Balance"),
        ),
        Layout(
            "multiline_day_end",
            multiline=True,
            balance_every_row=False,
            date_format="%d-%m-%y",
            headers=("Date", "Transaction details", "Withdrawals", "Deposits", "Balance"),
        ),
        Layout(
            "european",
            ruled=True,
            debit_credit=False,
            european=True,
            negative="trailing",
            date_format="%d.%m.%Y",
            currency="EUR",
            headers=("Datum", "Beschreibung", "Betrag", "Saldo"),
        ),
        Layout(
            "crdr_iso",
            debit_credit=False,
            negative="crdr",
            balance_suffix=True,
            date_format="%Y-%m-%d",
            currency="USD",
            headers=("Posting date", "Particulars", "Amount", "Balance"),
        ),
        Layout(
            "no_year_year_end",
            debit_credit=False,
            negative="parens",
            multiline=True,
            date_format="%d %b",
            symbol="£",
            headers=("Date", "Narrative", "Amount", "Balance"),
            start=dt.date(2025, 12, 12),
        ),
        Layout(
            "date_once_per_day",
            multiline=True,
            balance_every_row=False,
            date_once_per_day=True,
            header_on_every_page=False,
            date_format="%d %b %y",
            headers=("Date", "Payment type and details", "Paid out", "Paid in", "Balance"),
        ),
        Layout(
            "us_month_day",
            ruled=True,
            balance_every_row=False,
            date_format="%b %d",
            currency="USD",
            headers=("Date", "Description", "Debits", "Credits", "Balance"),
            start=dt.date(2025, 12, 20),
            period_line=False,
        ),
    )
}


@dataclass(frozen=True)
class GeneratedStatement:
    layout: Layout
    pdf: bytes
    transactions: list[Transaction]
    meta: StatementMeta
    tampered_row: int | None = None
    """The first row whose printed balance no longer follows (tampered statements only)."""
    pages: int = 1


def _signed(value: Decimal, layout: Layout) -> str:
    return format_amount(
        value, european=layout.european, style=layout.negative, symbol=layout.symbol
    )


def _balance(value: Decimal, layout: Layout) -> str:
    style = "crdr" if layout.balance_suffix else "minus"
    return format_amount(value, european=layout.european, style=style, symbol=layout.symbol)


def _description(rng: random.Random, credit: bool, multiline: bool) -> list[str]:
    lines = [rng.choice(_INCOME) if credit else f"{rng.choice(_KINDS)} {rng.choice(_MERCHANTS)}"]
    if multiline and rng.random() < 0.6:
        lines.append(f"REF {rng.randrange(10**7, 10**8)}")
        if rng.random() < 0.4:
            lines.append(f"ON {rng.randrange(1, 28):02d} CARD {rng.randrange(1000, 9999)}")
    return lines


@dataclass
class _Row:
    date: dt.date | None
    lines: list[str]
    amount: Decimal | None
    balance: Decimal | None
    running: Decimal = Decimal(0)
    """The true balance after this row, printed or not (carried-forward lines show it)."""
    symbol: str | None = None
    """A currency symbol other than the layout's, for statements that mix currencies."""


def _rows(layout: Layout, rng: random.Random, opening: Decimal) -> list[_Row]:
    rows: list[_Row] = []
    day = layout.start
    balance = opening
    for _ in range(layout.transactions):
        if rows and rng.random() < 0.55:
            day += dt.timedelta(days=rng.randrange(1, 4))
        credit = rng.random() < 0.22
        cents = rng.randrange(150_00, 2_600_00) if credit else rng.randrange(1_25, 480_00)
        amount = Decimal(cents) / 100 * (1 if credit else -1)
        balance += amount
        lines = _description(rng, credit, layout.multiline)
        rows.append(_Row(day, lines, amount, balance, balance))
    if not layout.balance_every_row:
        for row, following in pairwise(rows):
            if following.date == row.date:
                row.balance = None
    return rows


class _Writer:
    """Lays rows out on pages, with brought/carried-forward lines between pages."""

    def __init__(self, layout: Layout, meta: StatementMeta) -> None:
        self.layout, self.meta = layout, meta
        self.pdf = FPDF(format="A4", unit="mm")
        self.pdf.set_auto_page_break(False)
        self.pdf.set_margins(MARGIN, MARGIN)
        widths = (
            [24.0, 96.0, 24.0, 24.0, 22.0] if layout.debit_credit else [24.0, 118.0, 24.0, 24.0]
        )
        self.edges = [MARGIN]
        for width in widths:
            self.edges.append(self.edges[-1] + width)
        self.y = 0.0
        self.page_top = 0.0
        self.last_date: dt.date | None = None
        self.pages = 0

    def _text(self, column: int, line: int, text: str, *, right: bool = False) -> None:
        pdf = self.pdf
        x0, x1 = self.edges[column] + 1.5, self.edges[column + 1] - 1.5
        pdf.set_xy(x0, self.y + line * LINE_H)
        pdf.cell(x1 - x0, LINE_H, text, align="R" if right else "L")

    def new_page(self) -> None:
        pdf, layout, meta = self.pdf, self.layout, self.meta
        pdf.add_page()
        self.pages += 1
        pdf.set_font("helvetica", "B", 15)
        pdf.set_xy(MARGIN, MARGIN)
        pdf.cell(120, 8, meta.bank_name or "")
        pdf.set_font("helvetica", "", 9)
        y = MARGIN + 10
        if self.pages == 1:
            assert meta.period_start is not None
            assert meta.period_end is not None
            period = f"{meta.period_start:%d %b %Y} to {meta.period_end:%d %b %Y}"
            dated = (
                f"Statement period: {period}"
                if layout.period_line
                else f"Statement date: {meta.period_end:%B %d, %Y}"
            )
            for line in (
                f"Account holder: {meta.holder_name}",
                f"Account number: 4021{(meta.account_number_masked or '')[-4:]}",
                dated,
                f"Currency: {layout.currency}",
            ):
                pdf.set_xy(MARGIN, y)
                pdf.cell(150, LINE_H, line)
                y += LINE_H
        else:
            pdf.set_xy(MARGIN, y)
            pdf.cell(150, LINE_H, "Statement continued")
            y += LINE_H
        self.y = y + 4
        self.page_top = self.y
        if self.pages == 1 or layout.header_on_every_page:
            pdf.set_font("helvetica", "B", 9)
            amount_columns = len(layout.headers) - 2
            for index, title in enumerate(layout.headers):
                self._text(index, 0, title, right=index >= len(layout.headers) - amount_columns)
            self.y += LINE_H
            self._rule()
            pdf.set_font("helvetica", "", 9)

    def _rule(self) -> None:
        if self.layout.ruled or self.y == self.page_top + LINE_H:
            self.pdf.line(self.edges[0], self.y, self.edges[-1], self.y)

    def fits(self, lines: int) -> bool:
        return self.y + (lines + 1) * LINE_H <= TABLE_BOTTOM

    def row(self, row: _Row) -> None:
        layout = self.layout if row.symbol is None else replace(self.layout, symbol=row.symbol)
        if row.date is not None and not (layout.date_once_per_day and row.date == self.last_date):
            self._text(0, 0, row.date.strftime(layout.date_format))
        self.last_date = row.date or self.last_date
        for index, line in enumerate(row.lines):
            self._text(1, index, line)
        last = len(layout.headers) - 1
        if row.amount is not None:
            if layout.debit_credit:
                plain = format_amount(
                    abs(row.amount), european=layout.european, symbol=layout.symbol
                )
                self._text(2 if row.amount < 0 else 3, 0, plain, right=True)
            else:
                self._text(2, 0, _signed(row.amount, layout), right=True)
        if row.balance is not None:
            self._text(last, 0, _balance(row.balance, layout), right=True)
        self.y += LINE_H * len(row.lines)
        self._rule()

    def close_page(self) -> None:
        if self.layout.ruled:
            for x in self.edges:
                self.pdf.line(x, self.page_top, x, self.y)
        self.pdf.set_xy(MARGIN, PAGE_H - 15)
        self.pdf.cell(190, LINE_H, f"Page {self.pages}", align="C")


def generate_statement(
    layout: Layout | str,
    seed: int = 0,
    *,
    tamper: bool = False,
    password: str | None = None,
    transactions: int | None = None,
    foreign_symbol: str | None = None,
) -> GeneratedStatement:
    """A statement PDF and its ground truth. `tamper` prints one amount that does not match
    the balances around it, as a forged or misprinted statement would; `foreign_symbol`
    prints one row's amounts in another currency."""
    if isinstance(layout, str):
        layout = LAYOUTS[layout]
    if transactions is not None:
        layout = replace(layout, transactions=transactions)
    rng = random.Random(f"{layout.name}:{seed}")
    opening = Decimal(rng.randrange(500_00, 6_000_00)) / 100
    rows = _rows(layout, rng, opening)
    assert rows[-1].date is not None
    meta = StatementMeta(
        bank_name="Northwind Bank plc",
        holder_name=rng.choice(("Jane Example", "Arjun Patel", "Maria Lopez", "Tom Baker")),
        account_number_masked=f"XXXX{rng.randrange(1000, 9999)}",
        currency=layout.currency,
        period_start=layout.start,
        period_end=rows[-1].date,
        opening_balance=opening,
        closing_balance=rows[-1].running,
    )
    tampered_row: int | None = None
    if tamper:
        victim = rng.randrange(2, len(rows) - 2)
        printed = rows[victim].amount
        assert printed is not None
        rows[victim].amount = printed + (Decimal("10.00") if printed > 0 else Decimal("-10.00"))
        tampered_row = next(i for i in range(victim, len(rows)) if rows[i].balance is not None)
    if foreign_symbol is not None:
        rows[len(rows) // 2].symbol = foreign_symbol
    writer = _Writer(layout, meta)
    truth: list[Transaction] = []
    balance = opening
    writer.new_page()
    writer.row(_Row(None, ["Balance brought forward"], None, balance))
    for index, row in enumerate(rows):
        if not writer.fits(len(row.lines)):
            writer.row(_Row(None, ["Balance carried forward"], None, balance))
            writer.close_page()
            writer.new_page()
            writer.row(_Row(None, ["Balance brought forward"], None, balance))
        writer.row(row)
        assert row.date is not None
        assert row.amount is not None
        truth.append(
            Transaction(row.date, " ".join(row.lines), row.amount, row.balance, writer.pages, index)
        )
        balance = row.running
    writer.row(_Row(None, ["Closing balance"], None, balance))
    writer.close_page()
    if password is not None:
        writer.pdf.set_encryption(
            owner_password=password + "-owner",
            user_password=password,
            encryption_method=EncryptionMethod.AES_256,
        )
    return GeneratedStatement(
        layout, bytes(writer.pdf.output()), truth, meta, tampered_row, writer.pages
    )


def scan(pdf: bytes, seed: int = 0, *, dpi: int = 150, pages: int | None = None) -> bytes:
    """The same pages as a scanner would give them: rasterised, slightly rotated, blurred and
    noisy, re-wrapped as an image-only PDF (no text layer)."""
    rng = np.random.default_rng(seed)
    document = pdfium.PdfDocument(pdf)
    out = FPDF(format="A4", unit="mm")
    for index in range(min(len(document), pages or len(document))):
        page = document[index]
        image = page.render(scale=dpi / 72, grayscale=True).to_numpy()
        gray = image if image.ndim == 2 else image[..., 0]
        height, width = gray.shape
        angle = float(rng.uniform(-0.6, 0.6))
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        gray = cv2.warpAffine(gray, matrix, (width, height), borderValue=255)
        gray = cv2.GaussianBlur(gray, (3, 3), 0.6)
        noisy = gray.astype(np.int16) + np.asarray(rng.normal(0, 10, size=gray.shape)).astype(
            np.int16
        )
        gray = np.clip(noisy, 0, 255).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        out.add_page()
        out.image(io.BytesIO(jpeg.tobytes()), x=0, y=0, w=210, h=297)
    return bytes(out.output())
