"""Reading a PDF with pypdfium2: opening it safely, words with boxes, ruling lines, rendering.

Speed matters (a 40 ms budget per page): the page's text comes out in one call and only the
first and last character of each word are asked for their box, instead of every character
(pdfium's text index matches `get_text_range`'s string one to one). Everything is read once
per page and shared by every strategy.
"""

from __future__ import annotations

import ctypes
import functools
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from touchstone.statements.exceptions import (
    CorruptPdf,
    NotAPdf,
    PasswordRequired,
    TooManyPages,
    WrongPassword,
)

PDF_MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024  # the header may follow a little junk; readers accept it within 1 KiB
RULE_THICKNESS = 2.0  # points: thinner than this, a path is a line, not a box
MIN_RULE_LENGTH = 8.0
MAX_FORM_DEPTH = 14  # Form XObjects nested deeper are not looked into (pypdfium2's default)
_WORD = re.compile(r"\S+")
_SUBSET_TAG = re.compile(r"^[A-Z]{6}\+")
_FACE_SUFFIX = re.compile(r"(?:Bold|Italic|Oblique|Regular)*(?:PS)?(?:MT)?$")
PDFIUM_LOCK = threading.Lock()
"""PDFium is not thread-safe, not even across documents: every call into it holds this lock.
Table reading and OCR run outside it, so an upload's `inspect_pdf` waits at most for one page
of a running extraction."""


@dataclass(frozen=True)
class ExtractionLimits:
    """Bounds on the work one upload may cause (bombs and absurd pages stop here)."""

    max_pages: int = 500
    max_chars_per_page: int = 200_000
    ocr_dpi: int = 200
    max_render_pixels: int = 40_000_000
    min_ocr_dpi: int = 100
    """Below this (the page is too large for `max_render_pixels`) OCR would be guesswork."""


@dataclass(frozen=True)
class PdfInfo:
    pages: int
    encrypted: bool


@dataclass(frozen=True, slots=True)
class Word:
    """A run of non-space characters, in points from the page's top-left corner."""

    text: str
    x0: float
    x1: float
    top: float
    bottom: float

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass(frozen=True, slots=True)
class Rule:
    """A horizontal or vertical ruling line (or one edge of a drawn box)."""

    position: float  # y of a horizontal rule, x of a vertical one
    start: float
    end: float


class Style(NamedTuple):
    """How a word is drawn: its typeface (the base font name without the subset tag and the
    weight or slant) and its size in points. A tuple: hashed per word, in C."""

    typeface: str
    size: float


@dataclass
class PageContent:
    number: int  # 1-based
    width: float
    height: float
    words: list[Word] = field(default_factory=list)
    styles: list[Style | None] = field(default_factory=list)
    """One per word (None when pdfium cannot tell the text object): the tampering signals
    compare a word with its row's neighbours."""
    horizontal: list[Rule] = field(default_factory=list)
    vertical: list[Rule] = field(default_factory=list)
    chars: int = 0


def open_document(
    data: bytes, password: str | None, limits: ExtractionLimits
) -> pdfium.PdfDocument:
    """Open the upload or raise the typed error that says what is wrong with it."""
    if PDF_MAGIC not in data[:MAGIC_WINDOW]:
        raise NotAPdf("The file does not start with a PDF header.")
    try:
        document = pdfium.PdfDocument(data, password=password)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            if password is None:
                raise PasswordRequired from exc
            raise WrongPassword from exc
        raise CorruptPdf(f"PDFium cannot read the file: {exc}") from exc
    pages = len(document)
    if pages == 0:
        document.close()
        raise CorruptPdf("The PDF has no pages.")
    if pages > limits.max_pages:
        document.close()
        raise TooManyPages(f"{pages} pages; at most {limits.max_pages} are accepted.")
    # The count is the page tree's own claim: a tree whose /Kids loop back (or lead nowhere)
    # still counts its pages, and only loading one fails. Finding each page's dictionary
    # (its size) walks the tree at ~2 us a page, without parsing any content.
    for index in range(pages):
        try:
            document.get_page_size(index)
        except pdfium.PdfiumError as exc:
            document.close()
            raise CorruptPdf(
                f"Page {index + 1} of {pages} cannot be found: the PDF's page tree is broken."
            ) from exc
    return document


def is_encrypted(document: pdfium.PdfDocument) -> bool:
    return bool(pdfium_c.FPDF_GetSecurityHandlerRevision(document.raw) != -1)


def read_page(page: pdfium.PdfPage, number: int, limits: ExtractionLimits) -> PageContent:
    """Words and ruling lines of one page; no words when the character count is over the limit
    (the caller flags the page from `chars`)."""
    width, height = page.get_size()
    content = PageContent(number, width, height)
    textpage = page.get_textpage()
    try:
        content.chars = textpage.count_chars()
        if 0 < content.chars <= limits.max_chars_per_page:
            content.words, content.styles = _words(textpage, height)
    finally:
        textpage.close()
    if content.words:
        _rules(page, height, content)
    return content


def _words(textpage: pdfium.PdfTextPage, height: float) -> tuple[list[Word], list[Style | None]]:
    text = textpage.get_text_range()
    words: list[Word] = []
    styles: list[Style | None] = []
    fonts = _Fonts()
    # pdfium's own call with one reused rectangle: the helper allocates one per character.
    box, raw = pdfium_c.FS_RECTF(), textpage.raw
    for match in _WORD.finditer(text):
        start, end = match.span()
        pdfium_c.FPDFText_GetLooseCharBox(raw, start, box)
        left, bottom, top, first_right = box.left, box.bottom, box.top, box.right
        pdfium_c.FPDFText_GetLooseCharBox(raw, end - 1, box)
        right = box.right
        if right <= left:  # a word broken across lines: fall back to its first character
            right = first_right
        words.append(Word(match.group(), left, right, height - top, height - bottom))
        styles.append(fonts.style(textpage, start))
    return words, styles


class _Fonts:
    """Styles of one page's text objects, each asked once (its words share it).

    Through the raw bindings: pypdfium2's helpers (`get_textobj`, `get_font`,
    `get_base_name`, `get_matrix`) wrap every answer in Python objects, ~23 us an object,
    a fifth of reading the page; the same calls here cost ~5 us."""

    def __init__(self) -> None:
        self.objects: dict[int | None, Style | None] = {}
        self.names: dict[int | None, str | None] = {}

    def style(self, textpage: pdfium.PdfTextPage, index: int) -> Style | None:
        """The style of the text object that draws character `index` (a word's first
        character stands for the word)."""
        handle = pdfium_c.FPDFText_GetTextObject(textpage.raw, index)
        key = _address(handle)
        if key not in self.objects:
            self.objects[key] = self._read(handle) if handle else None
        return self.objects[key]

    def _read(self, handle: Any) -> Style | None:
        size = ctypes.c_float()
        matrix = pdfium_c.FS_MATRIX()
        font = pdfium_c.FPDFTextObj_GetFont(handle)
        if not (
            font
            and pdfium_c.FPDFTextObj_GetFontSize(handle, size)
            and pdfium_c.FPDFPageObj_GetMatrix(handle, matrix)
        ):
            return None
        key = _address(font)
        if key not in self.names:
            self.names[key] = _base_name(font)
        name = self.names[key]
        if name is None:
            return None
        # The font size is the `Tf` operand; many producers set it to 1 and scale the text
        # matrix instead, so the size drawn is that times the matrix's vertical scale.
        return Style(typeface(name), round(size.value * math.hypot(matrix.c, matrix.d), 1))


def _address(handle: Any) -> int | None:
    """A handle's identity: the same object or font answers with the same address (read
    from the pointer's own buffer: a third of the cost of `ctypes.cast`, once per word)."""
    return ctypes.c_void_p.from_buffer(handle).value


def _base_name(font: Any) -> str | None:
    length = pdfium_c.FPDFFont_GetBaseFontName(font, None, 0)
    if not length:
        return None
    buffer = ctypes.create_string_buffer(length)
    pdfium_c.FPDFFont_GetBaseFontName(font, buffer, length)
    return buffer.value.decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=1024)
def typeface(base_name: str) -> str:
    """`ABCDEF+Arial-BoldMT` -> `Arial`: the subset tag, weight, slant and PostScript
    suffixes removed, so bold or italic emphasis (common in any layout) is not a change of
    face."""
    name = _SUBSET_TAG.sub("", base_name)
    name = re.split(r"[-,]", name, maxsplit=1)[0]
    return _FACE_SUFFIX.sub("", name) or base_name


def _path_bounds(page: pdfium.PdfPage) -> list[tuple[float, float, float, float]]:
    """(left, bottom, right, top) of every path on the page, inside Form XObjects too (at
    most `MAX_FORM_DEPTH` deep), through pdfium's own calls: the helper objects of
    `get_objects` cost more than the rules they find."""
    found: list[tuple[float, float, float, float]] = []
    box = [ctypes.c_float() for _ in range(4)]

    def walk(parent: Any, form: bool, depth: int) -> None:
        count = (pdfium_c.FPDFFormObj_CountObjects if form else pdfium_c.FPDFPage_CountObjects)(
            parent
        )
        get = pdfium_c.FPDFFormObj_GetObject if form else pdfium_c.FPDFPage_GetObject
        for index in range(max(0, count)):
            obj = get(parent, index)
            if not obj:
                continue
            kind = pdfium_c.FPDFPageObj_GetType(obj)
            if kind == pdfium_c.FPDF_PAGEOBJ_PATH:
                if pdfium_c.FPDFPageObj_GetBounds(obj, *box):
                    found.append((box[0].value, box[1].value, box[2].value, box[3].value))
            elif kind == pdfium_c.FPDF_PAGEOBJ_FORM and depth < MAX_FORM_DEPTH:
                walk(obj, True, depth + 1)

    walk(page.raw, False, 0)
    return found


def _rules(page: pdfium.PdfPage, height: float, content: PageContent) -> None:
    for left, bottom, right, top in _path_bounds(page):
        top, bottom = height - top, height - bottom
        wide, tall = right - left, bottom - top
        if tall <= RULE_THICKNESS and wide >= MIN_RULE_LENGTH:
            content.horizontal.append(Rule((top + bottom) / 2, left, right))
        elif wide <= RULE_THICKNESS and tall >= MIN_RULE_LENGTH:
            content.vertical.append(Rule((left + right) / 2, top, bottom))
        elif wide > RULE_THICKNESS and tall > RULE_THICKNESS:
            content.horizontal += [Rule(top, left, right), Rule(bottom, left, right)]
            content.vertical += [Rule(left, top, bottom), Rule(right, top, bottom)]


def render_gray(
    page: pdfium.PdfPage, limits: ExtractionLimits
) -> tuple[npt.NDArray[np.uint8], float] | None:
    """The page as a grayscale image for OCR and its scale (pixels per point), lowered to keep
    within `max_render_pixels`; None when even `min_ocr_dpi` would exceed it."""
    width, height = page.get_size()
    scale = limits.ocr_dpi / 72
    if width * height * scale * scale > limits.max_render_pixels:
        scale = (limits.max_render_pixels / (width * height)) ** 0.5
        if scale * 72 < limits.min_ocr_dpi:
            return None
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        image = np.array(bitmap.to_numpy(), dtype=np.uint8, copy=True)
    finally:
        bitmap.close()
    if image.ndim == 3:
        image = image[..., 0]
    return image, scale


def page_texts(data: bytes, limits: ExtractionLimits) -> list[str]:
    """Each page's text layer as pdfium reads it (no boxes, no OCR), one page per hold of
    the lock: the raw reader other modules share (research sources, via `service`)."""
    with PDFIUM_LOCK:
        document = open_document(data, None, limits)
    try:
        texts = []
        for index in range(len(document)):
            with PDFIUM_LOCK:
                page = document[index]
                textpage = page.get_textpage()
                try:
                    chars = textpage.count_chars()
                    text = textpage.get_text_range() if chars <= limits.max_chars_per_page else ""
                finally:
                    textpage.close()
                    page.close()
            texts.append(text)
        return texts
    finally:
        with PDFIUM_LOCK:
            document.close()
