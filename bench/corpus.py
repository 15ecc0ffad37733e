"""The outside statement corpus (`../shared/corpora/statements/`): files, truth, the split.

Nothing here was made by this project: the PDFs and their `*.truth.json` come from other
people's repositories (see the corpus's MANIFEST.md). They are read where they lie, never
copied into the repository; edited copies (tampering) are made in memory.

The held-out part is chosen by bank family (the corpus's sub-folder), not by file, so that
near-identical files of one generator never sit on both sides: a family is held out when
the first byte of the SHA-256 of its folder name is even. No rule or threshold is chosen by
looking at the held-out results; they are reported separately.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from touchstone.statements.domain import ExtractedStatement
from touchstone.statements.extraction import ExtractionLimits
from touchstone.statements.extraction.layout import group_lines
from touchstone.statements.extraction.ledger import label_kind
from touchstone.statements.extraction.normalise import parse_amount, parse_date
from touchstone.statements.extraction.pdf import Word, read_page

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "statements"
DEVELOPMENT = "development"
HELD_OUT = "held-out"


@dataclass(frozen=True)
class CorpusStatement:
    path: Path
    family: str
    truth: dict[str, object]

    @property
    def part(self) -> str:
        return part_of(self.family)

    @property
    def password(self) -> str | None:
        value = self.truth.get("password")
        return value if isinstance(value, str) else None

    @property
    def transactions(self) -> list[tuple[dt.date, Decimal]]:
        listed = self.truth.get("transactions") or []
        assert isinstance(listed, list)
        return [
            (dt.date.fromisoformat(t["date"]), Decimal(str(t["amount"])).normalize())
            for t in listed
        ]

    @property
    def should_verify(self) -> bool:
        """A text-layer statement whose printed summary reconciles and whose transactions
        sum to it: a correct reading must come out `verified`. The others (a summary that
        does not reconcile, or contradicts the table per the truth's notes, a scan, a
        summary-only guide) must not."""
        notes = str(self.truth.get("notes") or "").lower()
        computed = self.truth.get("computed_from_transactions")
        sums = not isinstance(computed, dict) or computed.get(
            "opening_plus_net_equals_closing", True
        )
        return (
            self.truth.get("summary_reconciles") is not False
            and bool(self.truth.get("transactions"))
            and "contradicts" not in notes
            and "do not sum" not in notes
            and "image-only" not in notes
            and bool(sums)
        )


def part_of(family: str) -> str:
    return HELD_OUT if hashlib.sha256(family.encode()).digest()[0] % 2 == 0 else DEVELOPMENT


def available() -> bool:
    return CORPUS.is_dir()


def statements(part: str | None = None) -> list[CorpusStatement]:
    found = []
    for pdf in sorted(CORPUS.glob("*/*.pdf")):
        truth_file = pdf.with_name(pdf.stem + ".truth.json")
        if not truth_file.is_file():
            continue
        item = CorpusStatement(pdf, pdf.parent.name, json.loads(truth_file.read_text()))
        if part is None or item.part == part:
            found.append(item)
    return found


def f1_counts(
    statement: ExtractedStatement, truth: list[tuple[dt.date, Decimal]]
) -> tuple[int, int, int]:
    """(matched, extracted, expected) on (date, signed amount) as multisets."""
    found = Counter((t.date, t.amount.normalize()) for t in statement.transactions)
    expected = Counter(truth)
    return sum((found & expected).values()), sum(found.values()), sum(expected.values())


class Edit(StrEnum):
    """What a forger changes."""

    AMOUNT = "amount"  # one figure in the middle of a page's dated rows
    TOTAL = "total"  # the first printed opening, closing or total figure
    NAME = "name"  # the holder's name: no balance can catch it, only the document signals


@dataclass(frozen=True)
class EditedPdf:
    data: bytes
    control: bytes
    """The same page written again by the same means with the word unchanged: the edit alone
    may decide the outcome only where the control reads as the original."""
    page: int
    before: str
    after: str


def edit_pdf(
    data: bytes,
    password: str | None,
    edit: Edit,
    *,
    holder: str | None = None,
    incremental: bool = True,
    skip: int = 0,
) -> EditedPdf | None:
    """A really edited copy, as a PDF editor makes one: one word's text changed inside its
    text object (its last digit or letter, to one the object's font already draws), the
    page's content stream written again by pdfium and the file saved as an incremental update
    (every earlier revision kept) or rewritten whole. None when no page holds the word to
    edit, or when the edited page does not read as the control but for that one character.
    `skip` passes over that many words of the kind (the middle amount first, then outwards):
    the next try when rewriting the first moved its row."""
    control = _rewrite(data, password, edit, holder, incremental, False, skip)
    edited = _rewrite(data, password, edit, holder, incremental, True, skip)
    if control is None or edited is None or control[1] != edited[1]:
        return None
    page, before, after = edited[1]
    same, changed = (_text_of_page(pdf[0], password, page - 1) for pdf in (control, edited))
    differing = sum(a != b for a, b in zip(same, changed, strict=False))
    if len(same) != len(changed) or differing != 1:
        return None
    return EditedPdf(edited[0], control[0], page, before, after)


def _rewrite(
    data: bytes,
    password: str | None,
    edit: Edit,
    holder: str | None,
    incremental: bool,
    change: bool,
    skip: int,
) -> tuple[bytes, tuple[int, str, str]] | None:
    document = pdfium.PdfDocument(data, password=password)
    try:
        for index in range(len(document)):
            page = document[index]
            try:
                found = _edit_page(page, index + 1, edit, holder, change, skip)
                if found is None:
                    continue
                pdfium_c.FPDFPage_GenerateContent(page.raw)
            finally:
                page.close()
            out = io.BytesIO()
            flags = pdfium_c.FPDF_INCREMENTAL if incremental else pdfium_c.FPDF_NO_INCREMENTAL
            document.save(out, flags=flags)
            return out.getvalue(), (index + 1, *found)
        return None
    finally:
        document.close()


def _text_of_page(data: bytes, password: str | None, index: int) -> str:
    document = pdfium.PdfDocument(data, password=password)
    try:
        page = document[index]
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
            page.close()
    finally:
        document.close()


def _edit_page(
    page: pdfium.PdfPage, number: int, edit: Edit, holder: str | None, change: bool, skip: int
) -> tuple[str, str] | None:
    words = read_page(page, number, ExtractionLimits()).words
    if edit is Edit.AMOUNT:
        targets = _from_the_middle(_row_amounts(words))[skip:]
    elif edit is Edit.TOTAL:
        targets = _printed_totals(words)[skip : skip + 1]
    else:
        targets = _name_words(words, holder)[skip:]
    height = page.get_height()
    textpage = page.get_textpage()
    try:
        objects = [(obj, _object_text(obj, textpage)) for obj in _text_objects(page)]
    finally:
        textpage.close()
    for target in targets:
        for obj, text in objects:
            if text.count(target.text) != 1 or not _overlaps(obj, target, height):
                continue
            drawn = {c for other, t in objects if _font(other) == _font(obj) for c in t}
            after = _changed(target.text, drawn)
            if after is None:
                continue
            _set_text(obj, text.replace(target.text, after if change else target.text))
            return target.text, after
    return None


def _row_amounts(words: list[Word]) -> list[Word]:
    candidates = []
    for line in group_lines(list(words)):
        if line.words and parse_date(line.words[0].text) is not None:
            amounts = [w for w in line.words if parse_amount(w.text) is not None]
            if amounts and parse_amount(amounts[0].text) != 0:
                candidates.append(amounts[0])
    return candidates


def _printed_totals(words: list[Word]) -> list[Word]:
    candidates = []
    for line in group_lines(list(words)):
        figures = [w for w in line.words if parse_amount(w.text) is not None]
        label = " ".join(w.text for w in line.words if w not in figures)
        if figures and label_kind(label) not in (None, "total"):
            candidates.append(figures[-1])
    return candidates


def _name_words(words: list[Word], holder: str | None) -> list[Word]:
    """The holder's name when the reader found one, else the page's first word of letters
    (the bank's or the holder's name at the head of the page)."""
    names = [part for part in (holder or "").split() if len(part) >= 3 and part.isalpha()]
    if names:
        return [w for w in words if w.text in names][:1]
    lines = group_lines(list(words))
    return [w for line in lines[:3] for w in line.words if len(w.text) >= 3 and w.text.isalpha()][
        :1
    ]


def _from_the_middle(candidates: list[Word]) -> list[Word]:
    middle = len(candidates) // 2
    return sorted(candidates, key=lambda w: abs(candidates.index(w) - middle))


def _changed(text: str, drawn: set[str]) -> str | None:
    """The word with its last digit (a figure) or last letter (a name) changed to another
    character the font already draws."""
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    index = digits[-1] if digits else len(text) - 1
    old = text[index]
    pool = (
        "0123456789"
        if old.isdigit()
        else ("ABCDEFGHIJKLMNOPQRSTUVWXYZ" if old.isupper() else "abcdefghijklmnopqrstuvwxyz")
    )
    start = pool.index(old) if old in pool else 0
    for step in range(1, len(pool)):
        new = pool[(start + step) % len(pool)]
        if new in drawn:
            return text[:index] + new + text[index + 1 :]
    return None


def _text_objects(page: pdfium.PdfPage) -> Iterator[ctypes.c_void_p]:
    for index in range(pdfium_c.FPDFPage_CountObjects(page.raw)):
        obj = pdfium_c.FPDFPage_GetObject(page.raw, index)
        if pdfium_c.FPDFPageObj_GetType(obj) == pdfium_c.FPDF_PAGEOBJ_TEXT:
            yield obj


def _object_text(obj: ctypes.c_void_p, textpage: pdfium.PdfTextPage) -> str:
    size = pdfium_c.FPDFTextObj_GetText(obj, textpage.raw, None, 0)
    buffer = ctypes.create_string_buffer(size)
    pointer = ctypes.cast(buffer, ctypes.POINTER(pdfium_c.FPDF_WCHAR))
    pdfium_c.FPDFTextObj_GetText(obj, textpage.raw, pointer, size)
    return buffer.raw[: max(0, size - 2)].decode("utf-16-le", errors="replace")


def _set_text(obj: ctypes.c_void_p, text: str) -> None:
    encoded = (text + "\x00").encode("utf-16-le")
    buffer = ctypes.create_string_buffer(encoded, len(encoded))
    if not pdfium_c.FPDFText_SetText(obj, ctypes.cast(buffer, ctypes.POINTER(pdfium_c.FPDF_WCHAR))):
        raise RuntimeError("pdfium refused to set the text object's text")


def _font(obj: ctypes.c_void_p) -> int | None:
    return ctypes.cast(pdfium_c.FPDFTextObj_GetFont(obj), ctypes.c_void_p).value


def _overlaps(obj: ctypes.c_void_p, word: Word, height: float) -> bool:
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    if not pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
        return False
    slack = 1.0
    return (
        left.value - slack <= word.x1
        and word.x0 <= right.value + slack
        and height - top.value - slack <= word.bottom
        and word.top <= height - bottom.value + slack
    )
