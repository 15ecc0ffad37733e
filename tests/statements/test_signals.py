"""Document signals (issue 15, item 3): the file's own metadata, revisions saved after it was
written, pages whose text changed after it, and figures drawn unlike their row. Statements
drawn here with fpdf2; an editor's save is imitated by appending an incremental update by hand
or made by pdfium (a real edit of the page's text, an annotation, a page)."""

from __future__ import annotations

import ctypes
import datetime as dt
import io
import re

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from bench.corpus import Edit, edit_pdf
from fpdf import FPDF

from touchstone.statements.domain import StatementStatus
from touchstone.statements.extraction import ExtractionLimits, extract_statement
from touchstone.statements.extraction.pdf import typeface
from touchstone.statements.extraction.signals import count_revisions, first_revision, pdf_date
from touchstone.statements.processing import signals_json
from touchstone.statements.schemas import SignalsOut

LIMITS = ExtractionLimits()
CREATED = dt.datetime(2025, 5, 2, 9, 30, tzinfo=dt.UTC)
Cell = tuple[float, str, str] | tuple[float, str, str, str, float]
"""(x in mm, text, align 'L' or 'R' at x), optionally with a font family and size."""


def render(lines: list[list[Cell]], created: dt.datetime = CREATED) -> bytes:
    pdf = FPDF()
    pdf.set_producer("Core Banking Statements 7.1")
    pdf.set_creator("Statement Service")
    pdf.set_creation_date(created)
    pdf.add_page()
    y = 15.0
    for cells in lines:
        for x, text, align, *font in cells:
            family, size = font or ("helvetica", 9.0)
            pdf.set_font(str(family), size=float(size))
            width = pdf.get_string_width(text)
            pdf.text(x - width if align == "R" else x, y, text)
        y += 5.5
    return bytes(pdf.output())


def statement_lines(
    styled: dict[str, tuple[str, float]] | None = None, closing: str = "2,159.50"
) -> list[list[Cell]]:
    """A statement that adds up; `styled` draws the named figures in another font."""
    styled = styled or {}
    rows = [
        ("01/04/2025", "SALARY ACME LTD", None, "2,500.00", "3,500.00"),
        ("03/04/2025", "RENT APRIL FLAT 2", "1,200.00", None, "2,300.00"),
        ("05/04/2025", "GROCERIES CORNER SHOP", "80.50", None, "2,219.50"),
        ("08/04/2025", "ELECTRICITY POWERCO", "60.00", None, closing),
    ]
    lines: list[list[Cell]] = [
        [(10, "Statement of Account", "L")],
        [(10, "Period: 01/04/2025 to 30/04/2025", "L")],
        [(10, "Opening Balance 1,000.00", "L")],
        [
            (10, "Date", "L"),
            (35, "Narration", "L"),
            (130, "Withdrawal", "R"),
            (160, "Deposit", "R"),
            (195, "Balance", "R"),
        ],
    ]
    for date, text, out, into, balance in rows:
        figures = [(130, out), (195, balance)] if out else [(160, into or ""), (195, balance)]
        cells: list[Cell] = [(10, date, "L"), (35, text, "L")]
        for x, figure in figures:
            cells.append(
                (x, figure, "R", *styled[figure]) if figure in styled else (x, figure, "R")
            )
        lines.append(cells)
    lines.append([(10, "Closing Balance", "L"), (195, closing, "R")])
    return lines


def append_revision(data: bytes, info: dict[str, str]) -> bytes:
    """What an editor's save appends: a new object (here the info dictionary), a
    cross-reference section for it and a trailer pointing back at the previous one."""
    size = int(re.findall(rb"/Size (\d+)", data)[-1])
    root = re.findall(rb"/Root (\d+ \d+ R)", data)[-1]
    previous = int(re.findall(rb"startxref\s+(\d+)", data)[-1])
    fields = b" ".join(b"/%s (%s)" % (key.encode(), value.encode()) for key, value in info.items())
    body = b"\n%d 0 obj\n<< %s >>\nendobj\n" % (size, fields)
    xref = b"xref\n0 1\n0000000000 65535 f \n%d 1\n%010d 00000 n \n" % (size, len(data) + 1)
    trailer = (
        b"trailer\n<< /Size %d /Root %s /Info %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
        % (
            size + 1,
            root,
            size,
            previous,
            len(data) + len(body),
        )
    )
    return data + body + xref + trailer


def test_a_clean_file_reports_its_metadata_and_no_findings() -> None:
    statement = extract_statement(render(statement_lines()), limits=LIMITS)

    assert statement.status is StatementStatus.VERIFIED, statement.issues
    signals = statement.signals
    assert (signals.producer, signals.creator) == (
        "Core Banking Statements 7.1",
        "Statement Service",
    )
    assert signals.created == CREATED
    assert signals.modified is None
    assert signals.pdf_version == "1.3"
    assert (signals.revisions, signals.incremental_updates) == (1, 0)
    assert signals.restyled == []
    assert signals.findings == []


def test_an_incremental_update_and_late_modification_are_reported_but_do_not_unverify() -> None:
    original = render(statement_lines())
    edited = append_revision(
        original,
        {
            "Producer": "Some PDF Editor 3.2",
            "CreationDate": "D:20250502093000Z",
            "ModDate": "D:20250611180000+02'00'",
        },
    )

    statement = extract_statement(edited, limits=LIMITS)

    assert statement.status is StatementStatus.VERIFIED  # the figures still add up
    signals = statement.signals
    assert signals.producer == "Some PDF Editor 3.2"  # the latest revision's info dictionary
    assert signals.modified == dt.datetime(2025, 6, 11, 16, 0, tzinfo=dt.UTC)
    assert (signals.revisions, signals.incremental_updates) == (2, 1)
    codes = {finding.code: finding.message for finding in signals.findings}
    assert set(codes) == {"modified_after_creation", "incremental_updates"}
    assert (
        "40 days after it was created (2025-05-02 to 2025-06-11)"
        in codes["modified_after_creation"]
    )
    assert "saved again once" in codes["incremental_updates"]


def test_dates_that_contradict_each_other_or_the_period() -> None:
    early = dt.datetime(2025, 4, 20, tzinfo=dt.UTC)  # the period runs to 30 April
    edited = append_revision(
        render(statement_lines(), created=early),
        {"CreationDate": "D:20250420000000Z", "ModDate": "D:20250419120000Z"},
    )

    signals = extract_statement(edited, limits=LIMITS).signals

    codes = {finding.code: finding.message for finding in signals.findings}
    assert codes["created_before_period_end"] == (
        "The file was created on 2025-04-20, before the statement period ended on 2025-04-30."
    )
    assert (
        "modification date (2025-04-19 12:00) is before its creation date"
        in codes["modified_before_creation"]
    )


def test_an_amount_drawn_at_another_size_is_reported_with_its_row() -> None:
    lines = statement_lines({"2,500.00": ("helvetica", 10.5)})

    statement = extract_statement(render(lines), limits=LIMITS)

    assert statement.status is StatementStatus.VERIFIED  # a signal alone changes no status
    [restyled] = statement.signals.restyled
    assert (restyled.page, restyled.text) == (1, "2,500.00")
    assert (restyled.typeface, restyled.size) == ("Helvetica", 10.5)
    assert (restyled.neighbours_typeface, restyled.neighbours_size) == ("Helvetica", 9.0)
    assert restyled.row == "01/04/2025 SALARY ACME LTD 2,500.00 3,500.00"
    [finding] = statement.signals.findings
    assert finding.code == "restyled_text"
    assert finding.message.startswith(
        "Page 1: '2,500.00' is in Helvetica 10.5 pt, the rest of its row in Helvetica 9 pt"
    )


def test_an_amount_in_a_face_used_nowhere_else_is_reported() -> None:
    lines = statement_lines({"80.50": ("times", 9.0)})

    [restyled] = extract_statement(render(lines), limits=LIMITS).signals.restyled

    assert (restyled.text, restyled.typeface, restyled.size) == ("80.50", "Times", 9.0)


def test_a_difference_every_row_shares_is_the_layout() -> None:
    """Balances printed larger on every row: a design, not an edit."""
    balances = ["3,500.00", "2,300.00", "2,219.50", "2,159.50"]
    lines = statement_lines(dict.fromkeys(balances, ("helvetica", 10.5)))

    signals = extract_statement(render(lines), limits=LIMITS).signals

    assert signals.restyled == []
    assert signals.findings == []


def test_totals_that_do_not_add_up_point_to_the_verification_issues() -> None:
    statement = extract_statement(render(statement_lines(closing="2,169.50")), limits=LIMITS)

    assert statement.status is StatementStatus.REVIEW
    [finding] = [f for f in statement.signals.findings if f.code == "totals_disagree"]
    assert statement.figure_issues >= 1
    assert finding.message.startswith(f"{statement.figure_issues} balance or printed total")


def test_signals_round_trip_through_the_stored_json_into_the_api_model() -> None:
    edited = append_revision(render(statement_lines()), {"ModDate": "D:20250611180000+02'00'"})
    signals = extract_statement(edited, limits=LIMITS).signals

    out = SignalsOut.model_validate(signals_json(signals))

    assert out.modified == dt.datetime(2025, 6, 11, 16, 0, tzinfo=dt.UTC)
    assert out.incremental_updates == 1
    assert [f.code for f in out.findings] == [f.code for f in signals.findings]


def test_revisions_of_linearised_and_hybrid_files_are_not_updates() -> None:
    section = b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 1 >>\nstartxref\n%d\n%%%%EOF\n"
    plain = b"%PDF-1.7\n" + section % 9
    assert count_revisions(plain) == (1, 0)
    linearised = b"%PDF-1.6\n1 0 obj\n<< /Linearized 1 >>\nendobj\n" + section % 0
    linearised += section % len(linearised)
    assert count_revisions(linearised) == (2, 0)
    hybrid = plain + b"xref\n0 0\ntrailer\n<< /Prev 9 >>\nstartxref\n%d\n%%%%EOF\n" % len(plain)
    assert count_revisions(hybrid) == (2, 0)
    updated = plain + section % len(plain)
    assert count_revisions(updated) == (2, 1)
    assert count_revisions(plain + b"startxref\n" + b"9" * 5000 + b"\n%%EOF\n") == (1, 0)


def test_pdf_dates_and_typefaces() -> None:
    eight = dt.timezone(dt.timedelta(hours=8))
    assert pdf_date("D:20231004225850+08'00'") == dt.datetime(2023, 10, 4, 22, 58, 50, tzinfo=eight)
    assert pdf_date("D:20250731122301Z") == dt.datetime(2025, 7, 31, 12, 23, 1, tzinfo=dt.UTC)
    assert pdf_date("D:2025") == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert pdf_date("D:20251399") is None
    assert pdf_date("D:20250101000000+99'00'") is None
    assert pdf_date("") is None
    assert typeface("ABCDEF+Arial-BoldMT") == typeface("ArialMT") == "Arial"
    assert typeface("TimesNewRomanPS-BoldMT") == typeface("TimesNewRomanPSMT") == "TimesNewRoman"
    assert typeface("Arial,Bold") == "Arial"


def test_a_restyled_number_is_masked_like_any_account_number() -> None:
    """Four groups of four digits are one account number, whichever words are restyled."""
    lines = statement_lines()
    lines.insert(
        1,
        [
            (10, "Savings held at Demo Bank for", "L"),
            (80, "1234 5678 9012 3456", "L", "helvetica", 11.0),
        ],
    )

    signals = extract_statement(render(lines), limits=LIMITS).signals

    [restyled] = signals.restyled
    assert restyled.text == "XXXX3456"
    assert restyled.row == "Savings held at Demo Bank for XXXX3456"
    assert "5678" not in repr(signals)


def _wide(text: str) -> ctypes.Array[ctypes.c_char]:
    encoded = (text + "\x00").encode("utf-16-le")
    return ctypes.create_string_buffer(encoded, len(encoded))


def _saved_incrementally(document: pdfium.PdfDocument) -> bytes:
    out = io.BytesIO()
    document.save(out, flags=pdfium_c.FPDF_INCREMENTAL)
    document.close()
    return out.getvalue()


def test_text_changed_in_an_incremental_update_keeps_the_statement_from_verified() -> None:
    """One letter of a word changed inside the page's text object by pdfium, as an editor
    does: the figures still add up, but the file's first revision reads otherwise."""
    original = render(statement_lines())
    edited = edit_pdf(original, None, Edit.NAME)
    assert edited is not None
    assert (edited.page, edited.before) == (1, "Statement")

    statement = extract_statement(edited.data, limits=LIMITS)

    assert statement.status is StatementStatus.REVIEW
    assert statement.figure_issues == 0  # no balance sees a changed word
    assert statement.signals.changed_pages == [1]
    message = (
        "The file was changed after it was written: the text of page 1 differs from its "
        "first revision, still inside the file (an incremental update)."
    )
    assert [issue.message for issue in statement.issues] == [message]
    codes = {finding.code: finding.message for finding in statement.signals.findings}
    assert codes["content_changed"] == message
    assert first_revision(edited.data) == original.rstrip()  # up to its `%%EOF`


def test_a_page_written_again_with_the_same_text_still_verifies() -> None:
    """The control of the edit above: pdfium writes the page's content again, unchanged, in an
    incremental update. A fact worth a look, not a changed statement."""
    edited = edit_pdf(render(statement_lines()), None, Edit.NAME)
    assert edited is not None

    statement = extract_statement(edited.control, limits=LIMITS)

    assert statement.status is StatementStatus.VERIFIED, statement.issues
    assert statement.signals.incremental_updates == 1
    assert statement.signals.changed_pages == []
    assert "content_changed" not in {finding.code for finding in statement.signals.findings}


def test_an_annotation_added_in_an_incremental_update_is_only_a_signal() -> None:
    """A reviewer's note on the page changes no word the statement prints."""
    document = pdfium.PdfDocument(render(statement_lines()))
    page = document[0]
    annotation = pdfium_c.FPDFPage_CreateAnnot(page.raw, pdfium_c.FPDF_ANNOT_SQUARE)
    assert pdfium_c.FPDFAnnot_SetRect(annotation, pdfium_c.FS_RECTF(100, 700, 200, 750))
    note = _wide("Checked against the payslip")
    contents = ctypes.cast(note, ctypes.POINTER(pdfium_c.FPDF_WCHAR))
    assert pdfium_c.FPDFAnnot_SetStringValue(annotation, b"Contents", contents)
    pdfium_c.FPDFPage_CloseAnnot(annotation)
    page.close()

    statement = extract_statement(_saved_incrementally(document), limits=LIMITS)

    assert statement.status is StatementStatus.VERIFIED, statement.issues
    assert (statement.signals.incremental_updates, statement.signals.changed_pages) == (1, [])
    assert [finding.code for finding in statement.signals.findings] == ["incremental_updates"]


def test_a_page_of_text_added_later_is_a_change_and_a_blank_one_is_not() -> None:
    blank = pdfium.PdfDocument(render(statement_lines()))
    blank.new_page(595, 842).close()
    statement = extract_statement(_saved_incrementally(blank), limits=LIMITS)
    assert statement.status is StatementStatus.VERIFIED, statement.issues
    assert statement.signals.changed_pages == []

    written = pdfium.PdfDocument(render(statement_lines()))
    page = written.new_page(595, 842)
    text = pdfium_c.FPDFPageObj_NewTextObj(written.raw, b"Helvetica", ctypes.c_float(10))
    assert pdfium_c.FPDFText_SetText(
        text, ctypes.cast(_wide("Bonus 9,000.00"), ctypes.POINTER(pdfium_c.FPDF_WCHAR))
    )
    pdfium_c.FPDFPage_InsertObject(page.raw, text)
    assert pdfium_c.FPDFPage_GenerateContent(page.raw)
    page.close()
    statement = extract_statement(_saved_incrementally(written), limits=LIMITS)
    assert statement.status is StatementStatus.REVIEW
    assert statement.signals.changed_pages == [2]
    assert statement.issues[-1].message.endswith(
        "(an incremental update); it had 1 page(s) then and has 2 now."
    )
