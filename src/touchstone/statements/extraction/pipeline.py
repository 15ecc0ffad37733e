"""One PDF in, one ExtractedStatement out: pages through the strategies, then cleaning,
metadata and balance validation. Synchronous and CPU-bound: callers run it in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

import pypdfium2 as pdfium

from touchstone.statements.domain import (
    ExtractedStatement,
    PageReport,
    StatementMeta,
    StatementStatus,
    Transaction,
    ValidationIssue,
)
from touchstone.statements.engines.ocr import OcrEngine
from touchstone.statements.exceptions import CorruptPdf
from touchstone.statements.extraction.columns import PageText
from touchstone.statements.extraction.layout import group_lines
from touchstone.statements.extraction.ledger import Ledger, read_ledger
from touchstone.statements.extraction.metadata import latest_date, read_metadata, read_period
from touchstone.statements.extraction.money import dollar
from touchstone.statements.extraction.normalise import resolve_year
from touchstone.statements.extraction.pdf import (
    PDFIUM_LOCK,
    ExtractionLimits,
    PdfInfo,
    Style,
    Word,
    is_encrypted,
    open_document,
    read_page,
    render_gray,
)
from touchstone.statements.extraction.signals import (
    change_message,
    content_change,
    document_signals,
    file_facts,
    restyled_rows,
)
from touchstone.statements.extraction.strategies import (
    OCR_STRATEGIES,
    TEXT_STRATEGIES,
    Context,
    PageOutcome,
    PageRows,
    Strategy,
    looks_like_a_table,
    run_strategies,
)
from touchstone.statements.extraction.validation import validate

_NUMERIC_DATE = re.compile(r"(\d{1,2})[/.\-](\d{1,2})(?:[/.\-]\d{2,4})?")
_YEAR = re.compile(r"\b(19[7-9]\d|20\d\d)\b")
TEXT_LETTERS: dict[str, Sequence[Strategy]] = {
    letter: (strategy,) for letter, strategy in TEXT_STRATEGIES.items()
}
OCR_LETTERS: dict[str, Sequence[Strategy]] = {"E": OCR_STRATEGIES}


def inspect_pdf(data: bytes, password: str | None = None, *, limits: ExtractionLimits) -> PdfInfo:
    """Cheap upload-time check: a PDF, within the page limit, and opened by this password."""
    with PDFIUM_LOCK:
        document = open_document(data, password, limits)
        try:
            return PdfInfo(pages=len(document), encrypted=is_encrypted(document))
        finally:
            document.close()


@dataclass
class _Page:
    text: PageText
    chars: int
    report: PageReport
    words: list[Word]  # the text layer's, kept with their styles for the signals
    styles: list[Style | None]
    rows: PageRows | None = None


def extract_statement(
    data: bytes,
    password: str | None = None,
    *,
    limits: ExtractionLimits,
    ocr: OcrEngine | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> ExtractedStatement:
    with PDFIUM_LOCK:
        document = open_document(data, password, limits)
    try:
        with PDFIUM_LOCK:
            facts = file_facts(document, data)
        change = content_change(document, data, password, limits)
        pages = _read_pages(document, limits)
        statement = _read_statement(document, pages, limits, ocr, on_page)
    except pdfium.PdfiumError as exc:  # the file, not the moment: reading it again cannot help
        raise CorruptPdf(f"PDFium cannot read the file: {exc}") from exc
    finally:
        with PDFIUM_LOCK:
            document.close()
    restyled = restyled_rows((p.report.page, p.words, p.styles) for p in pages)
    statement.signals = document_signals(facts, restyled, statement, change)
    if change is not None:
        # What the statement says was changed after it was written: no check of its figures
        # can vouch for the rest (a name or a date has no balance).
        statement.issues.append(ValidationIssue(None, change_message(change)))
        if statement.status is StatementStatus.VERIFIED:
            statement.status = StatementStatus.REVIEW
    return statement


def _read_statement(
    document: pdfium.PdfDocument,
    pages: list[_Page],
    limits: ExtractionLimits,
    ocr: OcrEngine | None,
    on_page: Callable[[int, int], None] | None,
) -> ExtractedStatement:
    """Strategy L's reading when it verifies, else the page strategies' when theirs does and
    no printed figure disagrees with L's rows, else L's in review."""
    dayfirst = _dayfirst(pages)
    ledger = read_ledger(
        [(p.report.page, p.text) for p in pages if p.text.lines and not _too_long(p, limits)],
        dayfirst,
    )
    if ledger is not None and (ledger.verified or ledger.figure_issues):
        # A printed figure that disagrees with L's rows disagrees with any reading: the page
        # strategies' would not be kept, so they are not run.
        if on_page is not None:
            on_page(len(pages), len(pages))
        return _from_ledger(pages, ledger, dayfirst, limits)
    context = Context(dayfirst=dayfirst)
    for index, page in enumerate(pages):
        context = _read_tables(document, page, context, limits, ocr)
        if on_page is not None:
            on_page(index + 1, len(pages))
    statement = _assemble(pages, context)
    if ledger is None or (
        statement.status is StatementStatus.VERIFIED and not ledger.figure_issues
    ):
        return statement
    for page in pages:  # the strategies' rows give way to the ledger's
        page.rows, page.report.strategy, page.report.rows = None, None, 0
        page.report.flagged = False
    return _from_ledger(pages, ledger, dayfirst, limits)


def _too_long(page: _Page, limits: ExtractionLimits) -> bool:
    return page.chars > limits.max_chars_per_page


def _from_ledger(
    pages: list[_Page], ledger: Ledger, dayfirst: bool, limits: ExtractionLimits
) -> ExtractedStatement:
    """The statement as strategy L read it: its status is the ledger's own verdict."""
    for page in pages:
        rows = ledger.pages.get(page.report.page)
        if rows is not None:
            page.rows = rows
            page.report.strategy = "L"
            page.report.rows = len(rows.transactions)
        elif not page.text.lines:
            page.report.rejected["L"] = "no text layer"
            page.report.flagged = not ledger.verified
        elif _too_long(page, limits):
            page.report.flagged = True
    first = pages[0].text
    preamble = first.lines if first.header_line is None else first.lines[: first.header_line]
    meta = read_metadata(preamble, dayfirst)
    if meta.period_start is None and (period := read_period(ledger.furniture, dayfirst)):
        meta.period_start, meta.period_end = period
    read = [page for page in pages if page.rows is not None]
    transactions = _transactions(read, meta, latest_date(ledger.furniture, dayfirst))
    if meta.period_start is None and transactions:
        meta.period_start = min(t.date for t in transactions)
        meta.period_end = max(t.date for t in transactions)
    elif ledger.statements > 1 and transactions and meta.period_end is not None:
        # The period printed first is the first statement's; the file runs to the last's.
        meta.period_end = max(meta.period_end, max(t.date for t in transactions))
    meta.opening_balance, meta.closing_balance = ledger.opening, ledger.closing
    issues = [ValidationIssue(row, message) for row, message in ledger.issues]
    currencies = {
        dollar(c, meta.currency) for page in read if page.rows for c in page.rows.currencies
    }
    issues += _settle_currency(meta, currencies)
    if not ledger.checks:
        issues.append(
            ValidationIssue(None, "no balance or printed total to check the rows against")
        )
    for report in (p.report for p in pages if p.report.flagged):
        issues.append(ValidationIssue(None, f"page {report.page} could not be read"))
    status = StatementStatus.REVIEW if issues else StatementStatus.VERIFIED
    return ExtractedStatement(
        meta=meta,
        transactions=transactions,
        pages=[p.report for p in pages],
        status=status,
        issues=issues,
        figure_issues=len(ledger.issues),
    )


def _read_pages(document: pdfium.PdfDocument, limits: ExtractionLimits) -> list[_Page]:
    pages: list[_Page] = []
    for index in range(len(document)):
        with PDFIUM_LOCK:
            page = document[index]
            try:
                content = read_page(page, index + 1, limits)
            finally:
                page.close()
        text = PageText.of(group_lines(content.words), content.horizontal, content.vertical)
        report = PageReport(page=index + 1, strategy=None)
        pages.append(_Page(text, content.chars, report, content.words, content.styles))
    return pages


def _dayfirst(pages: list[_Page]) -> bool:
    """`03/04/2025` is 3 April unless some date on the statement only reads month-first."""
    day_first = month_first = False
    for page in pages:
        for line in page.text.lines:
            for word in line.words:
                if match := _NUMERIC_DATE.fullmatch(word.text):
                    day_first |= int(match[1]) > 12
                    month_first |= int(match[2]) > 12
    return day_first or not month_first


def _read_tables(
    document: pdfium.PdfDocument,
    page: _Page,
    context: Context,
    limits: ExtractionLimits,
    ocr: OcrEngine | None,
) -> Context:
    """Run the strategies on one page; returns what the next page inherits from it."""
    report = page.report
    if page.chars > limits.max_chars_per_page:
        report.flagged = True
        report.rejected["text"] = (
            f"{page.chars} characters; the limit is {limits.max_chars_per_page}"
        )
        return context
    page.text = page.text.inheriting(context.header)
    outcome = PageOutcome(None, {}, False)
    if page.text.lines:
        outcome = run_strategies(TEXT_LETTERS, page.text, context)
    else:
        outcome.rejected.update(dict.fromkeys(TEXT_STRATEGIES, "no text layer"))
    if not outcome.readable and page.text.lines:
        outcome.rejected["E"] = "the page has a text layer: OCR reads only pages without one"
    elif not outcome.readable:
        if ocr is None:
            outcome.rejected["E"] = "OCR disabled"
        else:
            scanned = _ocr_page(document, page, limits, ocr)
            if isinstance(scanned, str):
                outcome.rejected["E"] = scanned
            else:
                page.text = scanned.inheriting(context.header)
                ocr_outcome = run_strategies(OCR_LETTERS, page.text, context)
                outcome.rejected.update(ocr_outcome.rejected)
                outcome.chosen = ocr_outcome.chosen
    report.rejected = outcome.rejected
    if outcome.chosen is None:
        report.flagged = not page.text.lines or looks_like_a_table(page.text)
        return context
    report.strategy = outcome.chosen.strategy
    report.rejected.pop(outcome.chosen.strategy, None)
    page.rows = outcome.chosen.rows
    report.rows = len(page.rows.transactions)
    end = outcome.chosen.end_balance
    return Context(
        context.dayfirst,
        context.balance if end is None else end,
        page.rows.transactions[-1].date,
        page.text.header,
    )


def _ocr_page(
    document: pdfium.PdfDocument, page: _Page, limits: ExtractionLimits, ocr: OcrEngine
) -> PageText | str:
    """The page's words as OCR reads them, or why it could not be read."""
    with PDFIUM_LOCK:
        pdf_page = document[page.report.page - 1]
        try:
            rendered = render_gray(pdf_page, limits)
        finally:
            pdf_page.close()
    if rendered is None:
        return f"the page is too large to render within {limits.max_render_pixels} pixels"
    image, scale = rendered
    words: list[Word] = []
    for found in ocr.read(image):
        parts = found.text.split()
        if not parts:
            continue
        # Engines box phrases; split them, sharing the width out by characters.
        step = (found.right - found.left) / max(1, sum(len(p) + 1 for p in parts) - 1)
        x = found.left
        for part in parts:
            width = len(part) * step
            words.append(
                Word(part, x / scale, (x + width) / scale, found.top / scale, found.bottom / scale)
            )
            x += width + step
    if not words:
        return "OCR found no text"
    return PageText.of(group_lines(words), [], [])


def _assemble(pages: list[_Page], context: Context) -> ExtractedStatement:
    first = pages[0].text
    preamble = first.lines if first.header_line is None else first.lines[: first.header_line]
    dayfirst = context.dayfirst
    meta = read_metadata(preamble, dayfirst)
    read = [page for page in pages if page.rows is not None]
    issues: list[ValidationIssue] = []
    transactions = _transactions(read, meta, latest_date(preamble, dayfirst))
    if meta.period_start is None and transactions:
        meta.period_start, meta.period_end = transactions[0].date, transactions[-1].date
    first_rows, last_rows = (read[0].rows, read[-1].rows) if read else (None, None)
    opening = first_rows.opening if first_rows else None
    closing = last_rows.closing if last_rows else None
    meta.opening_balance = _derived_opening(transactions) if opening is None else opening
    meta.closing_balance = context.balance if closing is None else closing
    seams = _page_seams(read)
    issues += seams
    currencies = {c for page in read if page.rows for c in page.rows.currencies}
    issues += _settle_currency(meta, currencies)
    status, balance_issues = validate(meta, transactions)
    for report in (p.report for p in pages if p.report.flagged):
        issues.append(ValidationIssue(None, f"page {report.page} could not be read"))
    if issues and status is StatementStatus.VERIFIED:
        status = StatementStatus.REVIEW
    return ExtractedStatement(
        meta=meta,
        transactions=transactions,
        pages=[p.report for p in pages],
        status=status,
        issues=issues + balance_issues,
        figure_issues=0 if status is StatementStatus.FAILED else len(seams + balance_issues),
    )


def _transactions(
    read: list[_Page], meta: StatementMeta, statement_date: dt.date | None
) -> list[Transaction]:
    """Rows with full dates. A missing year comes from the printed period; else from the
    statement date (the year up to it); else from the years seen, rows running in order."""
    raw = [(page.report.page, t) for page in read if page.rows for t in page.rows.transactions]
    years = Counter(t.date.year for _, t in raw if t.date.year is not None)
    fallback = years.most_common(1)[0][0] if years else _year_in_text(read) or dt.date.today().year
    out: list[Transaction] = []
    for row, (number, txn) in enumerate(raw):
        start, end = meta.period_start, meta.period_end
        if start is None and statement_date is not None:
            start, end = statement_date - dt.timedelta(days=364), statement_date
        elif start is None and out:
            # No printed period: rows run in date order, so a year-less date that falls before
            # the previous row (December, then January) belongs to the following year.
            start = out[-1].date
            end = start + dt.timedelta(days=365)
        date = resolve_year(txn.date, start, end, fallback)
        out.append(Transaction(date, txn.description, txn.amount, txn.balance, number, row))
    return out


def _year_in_text(read: list[_Page]) -> int | None:
    years = Counter(
        int(year) for page in read for line in page.text.lines for year in _YEAR.findall(line.text)
    )
    return years.most_common(1)[0][0] if years else None


def _derived_opening(transactions: list[Transaction]) -> Decimal | None:
    """Without a brought-forward line: the first printed balance minus the amounts up to it."""
    total = Decimal(0)
    for txn in transactions:
        total += txn.amount
        if txn.balance is not None:
            return txn.balance - total
    return None


def _settle_currency(meta: StatementMeta, currencies: set[str]) -> list[ValidationIssue]:
    """The statement's currency: the one its figures and header name, else an issue."""
    if meta.currency:
        currencies.add(meta.currency)
    if len(currencies) > 1:
        return [ValidationIssue(None, f"mixed currencies: {', '.join(sorted(currencies))}")]
    if meta.currency is None and currencies:
        meta.currency = currencies.pop()
    return []


def _page_seams(read: list[_Page]) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    for before, after in pairwise(read):
        if before.rows is None or after.rows is None:
            continue
        carried, brought = before.rows.closing, after.rows.opening
        if carried is not None and brought is not None and carried != brought:
            issues.append(
                ValidationIssue(
                    None,
                    f"page {before.report.page} carries {carried} forward but page "
                    f"{after.report.page} brings {brought} forward",
                )
            )
    return issues
