"""Extraction end to end on generated statements whose ground truth is known."""

from __future__ import annotations

import datetime as dt
import socket
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pytest
from bench.generators.statements import LAYOUTS, generate_statement, scan
from fpdf import FPDF

from touchstone.statements.domain import (
    ExtractedStatement,
    StatementMeta,
    StatementStatus,
    Transaction,
)
from touchstone.statements.engines.ocr import OcrWord, RapidOcrEngine
from touchstone.statements.exceptions import (
    CorruptPdf,
    NotAPdf,
    PasswordRequired,
    TooManyPages,
    WrongPassword,
)
from touchstone.statements.extraction import (
    ExtractionLimits,
    check_continuity,
    extract_statement,
    inspect_pdf,
)
from touchstone.statements.extraction.columns import PageText, Rejected
from touchstone.statements.extraction.layout import group_lines, phrases
from touchstone.statements.extraction.pdf import open_document, read_page
from touchstone.statements.extraction.strategies import TEXT_STRATEGIES, Context

LIMITS = ExtractionLimits()


def _key(txn: Transaction) -> tuple[object, ...]:
    return (txn.date, " ".join(txn.description.split()), txn.amount, txn.balance, txn.page)


def _assert_exact(statement: ExtractedStatement, truth: list[Transaction]) -> None:
    assert [_key(t) for t in statement.transactions] == [_key(t) for t in truth]
    assert [t.row for t in statement.transactions] == list(range(len(truth)))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_each_layout_extracts_its_ground_truth_and_is_verified(name: str) -> None:
    generated = generate_statement(name, seed=7)
    assert generated.pages >= 2  # carried-forward lines are part of every layout

    statement = extract_statement(generated.pdf, limits=LIMITS)

    _assert_exact(statement, generated.transactions)
    assert statement.status is StatementStatus.VERIFIED, statement.issues
    assert statement.issues == []
    assert statement.meta == generated.meta
    assert all(page.strategy is not None and not page.flagged for page in statement.pages)


def _page_text(pdf: bytes, number: int = 1) -> PageText:
    document = open_document(pdf, None, LIMITS)
    content = read_page(document[number - 1], number, LIMITS)
    return PageText.of(group_lines(content.words), content.horizontal, content.vertical)


def test_every_strategy_reads_a_ruled_table_and_rule_based_ones_refuse_a_borderless_one() -> None:
    ruled = generate_statement("ruled_uk", seed=3)
    page_truth = [(t.amount, t.balance) for t in ruled.transactions if t.page == 1]
    page = _page_text(ruled.pdf)
    for letter, strategy in TEXT_STRATEGIES.items():
        rows = strategy(page, Context())
        assert [(t.amount, t.balance) for t in rows.transactions] == page_truth, letter

    borderless = _page_text(generate_statement("multiline_day_end", seed=3).pdf)
    for letter in "AC":
        with pytest.raises(Rejected, match="ruling lines"):
            TEXT_STRATEGIES[letter](borderless, Context())
    aligned = TEXT_STRATEGIES["B"](borderless, Context())
    assert aligned == TEXT_STRATEGIES["D"](borderless, Context())


def test_page_report_names_the_strategy_used_and_page_strategies_run_only_if_they_count() -> None:
    statement = extract_statement(generate_statement("crdr_iso", seed=1).pdf, limits=LIMITS)
    first = statement.pages[0]
    assert first.strategy == "L"  # the ledger verified: the page strategies never ran
    assert first.rows == sum(1 for t in statement.transactions if t.page == 1)

    # A changed amount breaks the printed closing balance against L's rows: no other reading
    # could be kept, so the page strategies are not run either.
    tampered = extract_statement(
        generate_statement("crdr_iso", seed=1, tamper=True).pdf, limits=LIMITS
    )
    assert tampered.status is StatementStatus.REVIEW
    assert tampered.pages[0].strategy == "L"
    assert tampered.pages[0].rejected == {}


@pytest.mark.parametrize("name", ["ruled_uk", "multiline_day_end", "no_year_year_end"])
def test_a_tampered_amount_puts_the_statement_in_review_at_the_right_row(name: str) -> None:
    generated = generate_statement(name, seed=11, tamper=True)

    statement = extract_statement(generated.pdf, limits=LIMITS)

    assert statement.status is StatementStatus.REVIEW
    _assert_exact(statement, generated.transactions)
    assert [i.row for i in statement.issues if i.row is not None] == [generated.tampered_row]
    assert any(i.row is None and "closing balance" in i.message for i in statement.issues)


def test_password_protected_statement() -> None:
    generated = generate_statement("borderless_signed", seed=2, password="s3cret")
    with pytest.raises(PasswordRequired):
        inspect_pdf(generated.pdf, limits=LIMITS)
    with pytest.raises(PasswordRequired):
        extract_statement(generated.pdf, limits=LIMITS)
    with pytest.raises(WrongPassword):
        extract_statement(generated.pdf, "guess", limits=LIMITS)

    assert inspect_pdf(generated.pdf, "s3cret", limits=LIMITS).encrypted
    statement = extract_statement(generated.pdf, "s3cret", limits=LIMITS)
    assert statement.status is StatementStatus.VERIFIED
    _assert_exact(statement, generated.transactions)


def test_bad_files_get_typed_errors() -> None:
    pdf = generate_statement("ruled_uk", seed=1).pdf
    info = inspect_pdf(pdf, limits=LIMITS)
    assert (info.pages, info.encrypted) == (2, False)
    with pytest.raises(NotAPdf):
        inspect_pdf(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, limits=LIMITS)
    with pytest.raises(NotAPdf):
        extract_statement(b"date,amount\n2025-01-01,12.00\n", limits=LIMITS)
    with pytest.raises(CorruptPdf):
        inspect_pdf(pdf[: len(pdf) // 2], limits=LIMITS)
    with pytest.raises(CorruptPdf):
        inspect_pdf(b"%PDF-1.7\nnot really a pdf", limits=LIMITS)
    with pytest.raises(TooManyPages):
        inspect_pdf(pdf, limits=ExtractionLimits(max_pages=1))
    with pytest.raises(TooManyPages):
        extract_statement(pdf, limits=ExtractionLimits(max_pages=1))


def test_a_pdf_without_transactions_fails_without_flagging_pages() -> None:
    letter = FPDF()
    letter.add_page()
    letter.set_font("helvetica", size=11)
    letter.multi_cell(0, 6, "Dear customer,\nyour new card is on its way.\nNorthwind Bank plc")
    statement = extract_statement(bytes(letter.output()), limits=LIMITS)
    assert statement.status is StatementStatus.FAILED
    assert statement.transactions == []
    assert statement.pages[0].strategy is None
    assert not statement.pages[0].flagged


def test_too_many_characters_on_a_page_flags_it_instead_of_reading_it() -> None:
    generated = generate_statement("ruled_uk", seed=1)
    statement = extract_statement(generated.pdf, limits=ExtractionLimits(max_chars_per_page=200))
    assert statement.status is StatementStatus.FAILED
    assert all(p.flagged and "limit is 200" in p.rejected["text"] for p in statement.pages)


class _CountingOcr:
    def __init__(self) -> None:
        self.calls = 0

    def read(self, image: npt.NDArray[np.uint8]) -> list[OcrWord]:
        self.calls += 1
        return []


def test_scanned_page_too_large_to_render_is_flagged_before_ocr_runs() -> None:
    scanned = scan(generate_statement("ruled_uk", seed=1, transactions=6).pdf, seed=1, dpi=50)
    ocr = _CountingOcr()
    statement = extract_statement(
        scanned, limits=ExtractionLimits(max_render_pixels=100_000), ocr=ocr
    )
    assert ocr.calls == 0
    assert statement.pages[0].flagged
    assert "too large to render" in statement.pages[0].rejected["E"]


def test_ocr_disabled_on_a_scan_flags_pages_and_fails() -> None:
    generated = generate_statement("ruled_uk", seed=4)
    scanned = scan(generated.pdf, seed=4, dpi=60)
    progress: list[tuple[int, int]] = []

    statement = extract_statement(scanned, limits=LIMITS, on_page=lambda *p: progress.append(p))

    assert statement.status is StatementStatus.FAILED
    assert progress == [(1, 2), (2, 2)]
    assert all(p.flagged and p.rejected["E"] == "OCR disabled" for p in statement.pages)
    assert all(p.rejected["A"] == "no text layer" for p in statement.pages)


class _TextLayerAsOcr:
    """An OCR engine that "reads" the phrases of the original text-layer PDF, in pixels of
    the image it is given: strategy E's plumbing checked exactly and fast."""

    def __init__(self, pdf: bytes) -> None:
        document = open_document(pdf, None, LIMITS)
        self.pages = [
            group_lines(read_page(document[i], i + 1, LIMITS).words) for i in range(len(document))
        ]
        self.calls = 0

    def read(self, image: npt.NDArray[np.uint8]) -> list[OcrWord]:
        scale = image.shape[0] / 842  # A4 height in points
        lines = self.pages[self.calls]
        self.calls += 1
        return [
            OcrWord(p.text, p.x0 * scale, p.top * scale, p.x1 * scale, p.bottom * scale, 0.99)
            for line in lines
            for p in phrases(line)
        ]


def test_scanned_pages_go_through_strategy_e_with_phrases_split_into_words() -> None:
    generated = generate_statement("multiline_day_end", seed=8)
    ocr = _TextLayerAsOcr(generated.pdf)

    statement = extract_statement(scan(generated.pdf, seed=8, dpi=40), limits=LIMITS, ocr=ocr)

    assert ocr.calls == generated.pages
    assert [p.strategy for p in statement.pages] == ["E"] * generated.pages
    _assert_exact(statement, generated.transactions)
    assert statement.meta == generated.meta
    assert statement.status is StatementStatus.VERIFIED


def test_scanned_statement_is_read_by_ocr_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object) -> None:
        raise AssertionError("OCR tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    generated = generate_statement("ruled_uk", seed=5, transactions=6)
    assert generated.pages == 1
    scanned = scan(generated.pdf, seed=5)

    statement = extract_statement(scanned, limits=LIMITS, ocr=RapidOcrEngine())

    assert statement.pages[0].strategy == "E"
    _assert_exact(statement, generated.transactions)
    assert statement.status is StatementStatus.VERIFIED


def test_year_is_inferred_across_december_to_january() -> None:
    generated = generate_statement("no_year_year_end", seed=9)
    statement = extract_statement(generated.pdf, limits=LIMITS)
    years = {t.date.year for t in statement.transactions}
    assert years == {2025, 2026}
    assert statement.transactions[0].date.month == 12
    assert statement.transactions[-1].date >= dt.date(2026, 1, 1)
    _assert_exact(statement, generated.transactions)


def test_mixed_currencies_are_reported() -> None:
    generated = generate_statement("no_year_year_end", seed=2, foreign_symbol="$")
    statement = extract_statement(generated.pdf, limits=LIMITS)
    assert statement.status is StatementStatus.REVIEW
    assert any(i.message == "mixed currencies: GBP, USD" for i in statement.issues)


def _statement(
    start: str, opening: str, closing: str, account: str = "XXXX1234"
) -> ExtractedStatement:
    meta = StatementMeta(
        account_number_masked=account,
        period_start=dt.date.fromisoformat(start),
        period_end=dt.date.fromisoformat(start) + dt.timedelta(days=27),
        opening_balance=Decimal(opening),
        closing_balance=Decimal(closing),
    )
    return ExtractedStatement(meta, [], [], StatementStatus.VERIFIED)


def test_continuity_between_consecutive_statements_of_one_account() -> None:
    january = _statement("2026-01-01", "100.00", "250.00")
    february = _statement("2026-02-01", "250.00", "80.00")
    march = _statement("2026-03-01", "75.00", "90.00")
    other_account = _statement("2026-02-01", "999.00", "1.00", account="XXXX9999")

    assert check_continuity([march, other_account, january, february]) == [
        issue for issue in check_continuity([february, march]) if issue
    ]
    [issue] = check_continuity([march, january, february, other_account])
    assert issue.row is None
    assert "closes at 80.00" in issue.message
    assert "opens at 75.00" in issue.message
    assert check_continuity([january, february]) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["european", "no_year_year_end"])
def test_scanned_statements_of_other_layouts_read_exactly(name: str) -> None:
    generated = generate_statement(name, seed=21, transactions=20)
    statement = extract_statement(
        scan(generated.pdf, seed=21), limits=LIMITS, ocr=RapidOcrEngine(threads=2)
    )
    assert {p.strategy for p in statement.pages} == {"E"}
    _assert_exact(statement, generated.transactions)
    assert statement.status is StatementStatus.VERIFIED
