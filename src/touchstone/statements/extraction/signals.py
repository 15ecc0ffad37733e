"""Document signals lenders use to spot an edited statement (issue 15, item 3).

What the file says about how it was made (producer, creator, creation and modification dates
from the info dictionary), whether it was saved again after it was written (incremental
updates leave every earlier revision in the file, each ending in `startxref … %%EOF`), and
words drawn in another typeface or size than the rest of their row (an amount typed over the
original). These are facts, reported with a sentence each; no producer is judged by its name.
One signal changes a statement's status: when the file was saved again after it was written,
its first revision is still inside it, and a page whose text reads differently there was
changed afterwards (a name, a date: what no balance can see). Updates that leave every
page's text as it was (a signature, an annotation, a filled form field, new metadata) stay
signals. A changed amount or total is also caught by the balance checks, which
`totals_disagree` only points to. A file rewritten whole keeps no earlier revision: nothing
in it says what was changed, and nothing is guessed.

Not detected: pages made by different producers. The info dictionary is per file and pdfium
exposes no per-page producer; an edited page shows as an incremental update instead.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pypdfium2 as pdfium

from touchstone.core.errors import AppError
from touchstone.statements.domain import (
    DocumentSignals,
    ExtractedStatement,
    Finding,
    RestyledText,
)
from touchstone.statements.extraction.metadata import without_numbers
from touchstone.statements.extraction.pdf import (
    MAGIC_WINDOW,
    PDFIUM_LOCK,
    ExtractionLimits,
    Style,
    Word,
    open_document,
)

MODIFIED_AFTER = dt.timedelta(days=1)
"""A bank system writes a statement once; an export may touch it again within hours."""
CLOCK_SLACK = dt.timedelta(minutes=5)
MAX_TEXT = 200  # metadata values are the uploader's text: kept short
MIN_FIGURE_CHARS = 3
MIN_ROW_WORDS = 3  # fewer words and there is no "rest of the row" to compare with
SIZE_TOLERANCE = 0.25  # points, or 4% of the row's size when that is more
SIZE_SHARE = 0.04
LAYOUT_ROWS = 3
LAYOUT_SHARE = 0.25
"""A difference seen in at least 3 rows and a quarter of the rows compared is the layout
(every amount in a monospaced face, say), not an edit."""
MAX_RESTYLED = 50
RARE_FACE_SHARE = 0.05  # of the document's characters

_PDF_DATE = re.compile(
    r"(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?\s*(?:([Zz])|([+\-])(\d{2})'?(\d{2})?'?)?"
)
_SECTION_END = re.compile(rb"startxref\s+(\d{1,20})\s+%%EOF")  # an offset, not a 5000-digit int
_EMPTY_XREF = re.compile(rb"xref\s+0\s+0\s+trailer")
_LINEARIZED = re.compile(rb"/Linearized\b")


@dataclass(frozen=True, slots=True)
class FileFacts:
    producer: str | None
    creator: str | None
    created: dt.datetime | None
    modified: dt.datetime | None
    pdf_version: str | None
    revisions: int
    incremental_updates: int


def file_facts(document: pdfium.PdfDocument, data: bytes) -> FileFacts:
    """The info dictionary, header version and revision count (the caller holds the lock)."""
    info = document.get_metadata_dict()
    version = document.get_version()
    revisions, updates = count_revisions(data)
    return FileFacts(
        producer=_text(info.get("Producer")),
        creator=_text(info.get("Creator")),
        created=pdf_date(info.get("CreationDate", "")),
        modified=pdf_date(info.get("ModDate", "")),
        pdf_version=None if version is None else f"{version // 10}.{version % 10}",
        revisions=revisions,
        incremental_updates=updates,
    )


def _text(value: str | None) -> str | None:
    cleaned = " ".join((value or "").replace("\x00", "").split())
    return cleaned[:MAX_TEXT] or None


def pdf_date(text: str) -> dt.datetime | None:
    """`D:20231004225850+08'00'` and its shorter forms; no zone given is read as UTC."""
    match = _PDF_DATE.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, zulu, sign, tz_hours, tz_minutes = match.groups()
    try:
        zone = dt.UTC
        if sign and not zulu:
            offset = dt.timedelta(hours=int(tz_hours), minutes=int(tz_minutes or 0))
            zone = dt.timezone(offset if sign == "+" else -offset)
        return dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=zone,
        )
    except ValueError:  # month 13, an offset of a day or more: not a date
        return None


def count_revisions(data: bytes) -> tuple[int, int]:
    """Sections ending in `startxref … %%EOF`, and how many of them are updates after the
    file was written."""
    sections = _sections(data)
    return len(sections), sum(update for _, update in sections)


def _sections(data: bytes) -> list[tuple[int, bool]]:
    """Where each section ends, and whether it is an update after the file was written. A
    linearised file is written with two sections; a hybrid-reference file (Microsoft Office)
    ends with an empty `xref 0 0` section that changes nothing."""
    written = 2 if _LINEARIZED.search(data[: MAGIC_WINDOW * 2]) else 1
    return [
        (
            end.end(),
            index >= written and not (index and _EMPTY_XREF.match(data, int(end[1]))),
        )
        for index, end in enumerate(_SECTION_END.finditer(data))
    ]


def first_revision(data: bytes) -> bytes | None:
    """The file as it was written, when updates were saved after it (else None): every byte
    up to the end of the last section before the first update."""
    sections = _sections(data)
    first_update = next((i for i, (_, update) in enumerate(sections) if update), None)
    if first_update is None:
        return None
    return data[: sections[first_update - 1][0]]


@dataclass(frozen=True, slots=True)
class ContentChange:
    """Pages whose text differs between the file as first written and as it is now."""

    pages: list[int]
    pages_written: int  # the page count of the first revision
    pages_now: int


def content_change(
    document: pdfium.PdfDocument, data: bytes, password: str | None, limits: ExtractionLimits
) -> ContentChange | None:
    """None when no update was saved, the first revision cannot be opened on its own (then
    nothing is claimed), or every page reads as it did. Text is compared without its
    spacing: writing a page again may space the same words otherwise. Takes the pdfium lock
    a page at a time, as the pages' reading does."""
    earlier = first_revision(data)
    if earlier is None:
        return None
    try:
        with PDFIUM_LOCK:
            first = open_document(earlier, password, limits)
    except AppError:  # not openable on its own: nothing is claimed
        return None
    try:
        before = _page_texts(first)
    except pdfium.PdfiumError:
        return None
    finally:
        with PDFIUM_LOCK:
            first.close()
    now = _page_texts(document)
    count = max(len(before), len(now))
    # A page added or taken away reads as an empty one there: a blank page says nothing.
    pages = [
        number
        for number, (then, text) in enumerate(
            zip(_padded(before, count), _padded(now, count), strict=True), start=1
        )
        if then != text
    ]
    if not pages:
        return None
    return ContentChange(pages, len(before), len(now))


def _padded(texts: list[str], count: int) -> list[str]:
    return texts + [""] * (count - len(texts))


def _page_texts(document: pdfium.PdfDocument) -> list[str]:
    texts = []
    with PDFIUM_LOCK:
        pages = len(document)
    for index in range(pages):
        with PDFIUM_LOCK:
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    texts.append("".join(str(textpage.get_text_range()).split()))
                finally:
                    textpage.close()
            finally:
                page.close()
    return texts


def change_message(change: ContentChange) -> str:
    """The fact, in a sentence: which pages read otherwise than when the file was written."""
    listed = ", ".join(str(page) for page in change.pages)
    which = f"page{'s' if len(change.pages) > 1 else ''} {listed}"
    count = (
        f"; it had {change.pages_written} page(s) then and has {change.pages_now} now"
        if change.pages_written != change.pages_now
        else ""
    )
    return (
        f"The file was changed after it was written: the text of {which} differs from its "
        f"first revision, still inside the file (an incremental update){count}."
    )


def restyled_rows(
    pages: Iterable[tuple[int, Sequence[Word], Sequence[Style | None]]],
) -> list[RestyledText]:
    """Figures (amounts, dates, numbers) drawn at another size than most
    of their row, or in a typeface the document hardly uses elsewhere, unless the same
    difference recurs across the document as its layout."""
    rows = [(page, row) for page, words, styles in pages for row in _rows(words, styles)]
    faces: Counter[str] = Counter()
    for _, row in rows:
        for word, style in row:
            faces[style.typeface] += len(word.text)
    rare = {face for face, chars in faces.items() if chars < RARE_FACE_SHARE * faces.total()}
    candidates: list[tuple[int, list[Word], Style, Style, list[str]]] = []
    compared = 0
    for page, row in rows:
        weight: Counter[Style] = Counter()
        for word, style in row:
            weight[style] += len(word.text)
        usual, chars = weight.most_common(1)[0]
        if len(row) < MIN_ROW_WORDS or chars * 2 <= weight.total():
            continue  # no style draws most of the row: nothing for a word to differ from
        compared += 1
        odd: dict[Style, list[str]] = {}
        for word, style in row:
            if _differs(style, usual, rare) and _figure(word.text):
                odd.setdefault(style, []).append(word.text)
        line = [word for word, _ in row]
        candidates += [(page, line, usual, style, texts) for style, texts in odd.items()]
    patterns = Counter((usual, style) for _, _, usual, style, _ in candidates)
    layout = max(LAYOUT_ROWS, LAYOUT_SHARE * compared)
    return [
        RestyledText(
            page=page,
            row=without_numbers(" ".join(word.text for word in line)),
            text=without_numbers(" ".join(texts)),
            typeface=style.typeface,
            size=style.size,
            neighbours_typeface=usual.typeface,
            neighbours_size=usual.size,
        )
        for page, line, usual, style, texts in candidates
        if patterns[usual, style] < layout
    ][:MAX_RESTYLED]


def _rows(words: Sequence[Word], styles: Sequence[Style | None]) -> list[list[tuple[Word, Style]]]:
    """Styled words into rows by vertical overlap (as `layout.group_lines`), left to right."""
    styled = sorted(
        ((word, style) for word, style in zip(words, styles, strict=True) if style is not None),
        key=lambda pair: pair[0].middle,
    )
    rows: list[list[tuple[Word, Style]]] = []
    top = bottom = 0.0
    for word, style in styled:
        if rows and top <= word.middle <= bottom:
            rows[-1].append((word, style))
        else:
            rows.append([(word, style)])
            top, bottom = word.top, word.bottom
    for row in rows:
        row.sort(key=lambda pair: pair[0].x0)
    return rows


def _figure(text: str) -> bool:
    """An amount, a date or a number: a digit in three characters or more (a one- or
    two-digit word is a footnote or callout mark more often than a figure)."""
    return len(text) >= MIN_FIGURE_CHARS and any(c.isdigit() for c in text)


def _differs(style: Style, dominant: Style, rare: set[str]) -> bool:
    """Another size, or a rare face: scripts and designs mix common faces in one row (Latin
    figures in Arial among Chinese text), a face pasted in for one figure is rare."""
    tolerance = max(SIZE_TOLERANCE, SIZE_SHARE * dominant.size)
    if abs(style.size - dominant.size) > tolerance:
        return True
    return style.typeface != dominant.typeface and style.typeface in rare


def document_signals(
    facts: FileFacts,
    restyled: list[RestyledText],
    statement: ExtractedStatement,
    change: ContentChange | None = None,
) -> DocumentSignals:
    """The facts and, for each one worth a look, a finding."""
    findings: list[Finding] = []
    created, modified = facts.created, facts.modified
    if created is not None and modified is not None:
        if modified - created > MODIFIED_AFTER:
            findings.append(
                Finding(
                    "modified_after_creation",
                    f"The file was modified {_days(modified - created)} after it was created "
                    f"({created:%Y-%m-%d} to {modified:%Y-%m-%d}).",
                )
            )
        elif created - modified > CLOCK_SLACK:
            findings.append(
                Finding(
                    "modified_before_creation",
                    f"The file's modification date ({modified:%Y-%m-%d %H:%M}) is before its "
                    f"creation date ({created:%Y-%m-%d %H:%M}).",
                )
            )
    period_end = statement.meta.period_end
    if created is not None and period_end is not None and created.date() < period_end:
        findings.append(
            Finding(
                "created_before_period_end",
                f"The file was created on {created:%Y-%m-%d}, before the statement period "
                f"ended on {period_end:%Y-%m-%d}.",
            )
        )
    if facts.incremental_updates:
        times = "once" if facts.incremental_updates == 1 else f"{facts.incremental_updates} times"
        findings.append(
            Finding(
                "incremental_updates",
                f"The file was saved again {times} after it was written (incremental updates); "
                "each earlier revision is still inside it.",
            )
        )
    if change is not None:
        findings.append(Finding("content_changed", change_message(change)))
    for item in restyled:
        findings.append(
            Finding(
                "restyled_text",
                f"Page {item.page}: '{item.text}' is in {item.typeface} "
                f"{item.size:g} pt, the rest of its row in {item.neighbours_typeface} "
                f"{item.neighbours_size:g} pt (row: '{item.row}').",
            )
        )
    if statement.figure_issues:
        findings.append(
            Finding(
                "totals_disagree",
                f"{statement.figure_issues} balance or printed total check(s) do not add up; "
                "the rows and figures are in the statement's issues.",
            )
        )
    return DocumentSignals(
        producer=facts.producer,
        creator=facts.creator,
        created=created,
        modified=modified,
        pdf_version=facts.pdf_version,
        revisions=facts.revisions,
        incremental_updates=facts.incremental_updates,
        changed_pages=[] if change is None else change.pages,
        restyled=restyled,
        findings=findings,
    )


def _days(gap: dt.timedelta) -> str:
    return "1 day" if gap.days == 1 else f"{gap.days} days"
