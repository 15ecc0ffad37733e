"""Files that are not one clean statement: two statements one after the other in one PDF
(each must be checked on its own chain and its own summary), and the text layers of scans
whose dates OCR cut in two or misread. Drawn here by a small renderer (unit tests only)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from fpdf import FPDF

from touchstone.statements.domain import StatementStatus
from touchstone.statements.extraction import ExtractionLimits, extract_statement
from touchstone.statements.extraction.money import leading_date, misread_date
from touchstone.statements.extraction.normalise import PartialDate
from touchstone.statements.extraction.pdf import Word
from touchstone.statements.processing import PageProgress

LIMITS = ExtractionLimits()
HEADER = [(10, "Date", "L"), (35, "Details", "L"), (130, "Paid out", "R"), (160, "Paid in", "R")]
HEADER += [(195, "Balance", "R")]
Cells = list[tuple[float, str, str]]


def _render(pages: list[list[Cells]]) -> bytes:
    """Each page is lines of cells (x in mm, text, align 'L' or 'R' at x)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=9)
    for lines in pages:
        pdf.add_page()
        y = 15.0
        for cells in lines:
            for x, text, align in cells:
                width = pdf.get_string_width(text)
                pdf.text(x - width if align == "R" else x, y, text)
            y += 5.5
    return bytes(pdf.output())


def _row(date: str, text: str, amount: str, balance: str) -> Cells:
    column = 130 if amount.startswith("-") else 160
    figure = amount.lstrip("-")
    return [(10, date, "L"), (35, text, "L"), (column, figure, "R"), (195, balance, "R")]


def _summary(period: str | None, opening: str, closing: str | None) -> list[Cells]:
    lines = [[(10, "Harbour Bank", "L")], [(10, "Account number 01-2345-0678901-00", "L")]]
    if period is not None:
        lines.append([(10, f"Statement period {period}", "L")])
    lines.append([(10, "Opening balance", "L"), (80, opening, "R")])
    if closing is not None:
        lines.append([(10, "Closing balance", "L"), (80, closing, "R")])
    return [*lines, HEADER]


def _bundle(
    second_closing: str | None = "1,600.00", salary: str = "600.00", period: bool = True
) -> bytes:
    february = _summary("1 Feb 2026 to 28 Feb 2026", "1,000.00", "1,450.00")
    february += [
        _row("03 Feb", "CARD GROCER", "-50.00", "950.00"),
        _row("05 Feb", "SALARY ACME", salary, "1,550.00"),
    ]
    february_2 = [HEADER, _row("20 Feb", "POWER CO", "-100.00", "1,450.00")]
    march = _summary("1 Mar 2026 to 31 Mar 2026" if period else None, "1,450.00", second_closing)
    march += [
        _row("04 Mar", "CARD GROCER", "-250.00", "1,200.00"),
        _row("12 Mar", "SALARY ACME", "400.00", "1,600.00"),
    ]
    return _render([february, february_2, march])


def test_two_statements_in_one_file_are_each_checked_on_their_own() -> None:
    statement = extract_statement(_bundle(), limits=LIMITS)
    assert statement.status is StatementStatus.VERIFIED, statement.issues
    assert [t.amount for t in statement.transactions] == [
        Decimal("-50.00"),
        Decimal("600.00"),
        Decimal("-100.00"),
        Decimal("-250.00"),
        Decimal("400.00"),
    ]
    assert (statement.meta.period_start, statement.meta.period_end) == (
        dt.date(2026, 2, 1),
        dt.date(2026, 3, 12),
    )
    assert statement.meta.opening_balance == Decimal("1000.00")
    assert statement.meta.closing_balance == Decimal("1600.00")


def test_a_second_statement_is_also_found_by_its_own_opening_balance_and_period() -> None:
    """No closing balance printed on the second statement: its opening balance and its own
    period above its rows start it; its opening is checked against its own rows."""
    assert extract_statement(_bundle(None), limits=LIMITS).status is StatementStatus.VERIFIED
    # An opening balance alone on a new page reads as brought forward: no second statement,
    # and page 1's closing balance disagrees with the file's last balance.
    alone = extract_statement(_bundle(None, period=False), limits=LIMITS)
    assert alone.status is StatementStatus.REVIEW
    changed = extract_statement(_bundle(None, salary="610.00"), limits=LIMITS)
    assert changed.status is StatementStatus.REVIEW


def test_a_changed_summary_of_the_second_statement_is_named() -> None:
    statement = extract_statement(_bundle(second_closing="1,700.00"), limits=LIMITS)
    assert statement.status is StatementStatus.REVIEW
    assert [i.message for i in statement.issues] == [
        "statement 2 of 2 in the file (from page 3): printed 'Closing balance' is 1700.00 but "
        "the rows give 1600.00"
    ]


def test_a_changed_amount_in_the_first_statement_of_a_bundle_is_caught() -> None:
    statement = extract_statement(_bundle(salary="610.00"), limits=LIMITS)
    assert statement.status is StatementStatus.REVIEW
    assert any(i.message.startswith("statement 1 of 2") for i in statement.issues)


def _carried(brought: str) -> bytes:
    first = _summary("1 Feb 2026 to 28 Feb 2026", "1,000.00", "1,450.00")
    first += [
        _row("03 Feb", "CARD GROCER", "-50.00", "950.00"),
        [(10, "Balance carried forward", "L"), (195, "950.00", "R")],
    ]
    second = [
        [(10, "Balance brought forward", "L"), (195, brought, "R")],
        HEADER,
        _row("05 Feb", "SALARY ACME", "500.00", "1,450.00"),
    ]
    return _render([first, second])


def test_a_balance_brought_forward_does_not_start_another_statement() -> None:
    """Page 2 opens with a balance brought forward and page 1's summary names both an
    opening and a closing balance: one statement, whose brought-forward figure is still
    checked against the running balance."""
    statement = extract_statement(_carried("950.00"), limits=LIMITS)
    assert statement.status is StatementStatus.VERIFIED, statement.issues
    changed = extract_statement(_carried("960.00"), limits=LIMITS)
    assert changed.status is StatementStatus.REVIEW
    assert not any("statement 2" in i.message for i in changed.issues)


def _words(*texts: str, gap: float = 0.5) -> list[Word]:
    words, x = [], 10.0
    for text in texts:
        words.append(Word(text, x, x + 5 * len(text), 100.0, 108.0))
        x += 5 * len(text) + gap
    return words


def test_a_date_cut_in_two_by_the_text_layer_is_read_whole() -> None:
    assert leading_date(_words("21", "/07", "TRANSIT", "11.90"), True) == (
        PartialDate(21, 7, None),
        2,
    )
    assert leading_date(_words("21/", "07", "TRANSIT"), True)[0] == PartialDate(21, 7, None)
    # Far apart, or a number beside a signed amount, it is no date.
    assert leading_date(_words("21", "/07", gap=40), True) == (None, 0)
    assert leading_date(_words("12", "-5.00"), True)[0] is None


def test_a_misread_date_separator_is_repaired_only_between_its_neighbours() -> None:
    assert misread_date("07107", True) == PartialDate(7, 7, None)
    assert misread_date("07l07", True) == PartialDate(7, 7, None)
    assert misread_date("12345", True) is None
    lines = [
        [(10, "Opening balance", "L"), (80, "100.00", "R")],
        HEADER,
        _row("06/07", "URBAN TRANSIT", "-1.00", "99.00"),
        _row("07107", "MORNING CAFE", "-4.00", "95.00"),
        _row("13/07", "REFUND", "10.00", "105.00"),
        _row("14/07", "ARCTIC MARKET", "-2.00", "103.00"),
        # 31/07 would fall after its neighbour (15/07): an undated row of the 14th stays so.
        _row("31107", "LATE ROW", "-1.00", "102.00"),
        _row("15/07", "LAST ROW", "-1.00", "101.00"),
    ]
    statement = extract_statement(_render([lines]), limits=LIMITS)
    assert statement.status is StatementStatus.VERIFIED, statement.issues
    assert [(t.date.day, t.amount) for t in statement.transactions] == [
        (6, Decimal("-1.00")),
        (7, Decimal("-4.00")),
        (13, Decimal("10.00")),
        (14, Decimal("-2.00")),
        (14, Decimal("-1.00")),
        (15, Decimal("-1.00")),
    ]


def test_page_progress_is_written_at_most_once_a_second_and_never_for_the_last_page() -> None:
    progress = PageProgress(100.0)
    assert not progress.due(1, 5, 100.4)
    assert progress.due(2, 5, 101.1)
    assert not progress.due(3, 5, 101.5)
    assert progress.due(4, 5, 102.2)
    assert not progress.due(5, 5, 110.0)
