"""The certificate as an A4 PDF, with the QR code of its verification page.

The PDF embeds a subset of DejaVu Sans shipped in ``fonts/`` (Latin, the rupee sign; see
``fonts/LICENSE.txt``), so the output does not depend on the host's fonts and stays small
and quick to build; what that font cannot draw is romanised (`romanise.py`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import qrcode
from fpdf import FPDF
from fpdf.fonts import TTFFont
from PIL import Image

from touchstone.appraisal.certificate.document import (
    CONFIDENCE_LEGEND,
    ITEM_COLUMNS,
    CertificateData,
    certificate_digest,
    check_label,
    issued_text,
    item_cells,
    party_rows,
    purity_rows,
    shown_fields,
    valuation_rows,
)
from touchstone.appraisal.certificate.romanise import Romaniser

_FONT_DIR: Final = Path(__file__).with_name("fonts")
_FONT_FAMILY: Final = "CertificateSans"
_MAX_EVIDENCE_PIXELS: Final = 40_000_000
_THUMBNAIL_BOX: Final = (400, 300)
"""Pixels for a 56 x 42 mm evidence box, about 180 dpi."""


def _qr_png(url: str) -> io.BytesIO:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4)
    code.add_data(url)
    code.make(fit=True)
    png = io.BytesIO()
    code.make_image().save(png, format="PNG")
    png.seek(0)
    return png


def _thumbnail_jpeg(jpeg: bytes) -> io.BytesIO | None:
    """The evidence image small enough to embed, or None when it cannot be read.

    A JPEG that is already thumbnail-sized is embedded as given (after a full decode has
    proved it readable); larger ones are decoded at a reduced scale and re-encoded.
    """
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            if image.width * image.height > _MAX_EVIDENCE_PIXELS:
                return None
            small_enough = image.width <= 2 * _THUMBNAIL_BOX[0] and (
                image.height <= 2 * _THUMBNAIL_BOX[1]
            )
            if small_enough and image.format == "JPEG" and image.mode in ("RGB", "L"):
                image.load()
                return io.BytesIO(jpeg)
            image.draft("RGB", _THUMBNAIL_BOX)
            image.thumbnail(_THUMBNAIL_BOX)
            small = image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=80)
    out.seek(0)
    return out


_PT: Final = 25.4 / 72
"""Millimetres per point."""
_MARGIN: Final = 15.0
_CELL_PAD: Final = 1.2


def _drawable_codepoints(pdf: FPDF) -> frozenset[int]:
    """Characters both weights of the embedded font can draw."""
    maps = [font.cmap for font in pdf.fonts.values() if isinstance(font, TTFFont)]
    return frozenset.intersection(*(frozenset(cmap) for cmap in maps))


class _CertificatePdf:
    """Lays the shown mapping out on A4; every string passes through the romaniser.

    Text is placed with ``FPDF.text`` and wrapped here: fpdf2's ``cell`` and
    ``multi_cell`` cost 25 to 400 times more per call, which alone would take the
    certificate past its time budget. Pages break explicitly through ``_room_for``.
    """

    def __init__(self, shown: Mapping[str, Any], issued_at: datetime) -> None:
        self.shown = shown
        pdf = FPDF(orientation="portrait", unit="mm", format="A4")
        pdf.set_auto_page_break(auto=False)
        pdf.add_font(_FONT_FAMILY, "", _FONT_DIR / "DejaVuSans-subset.ttf")
        pdf.add_font(_FONT_FAMILY, "B", _FONT_DIR / "DejaVuSans-Bold-subset.ttf")
        pdf.set_creation_date(issued_at)
        pdf.set_title(f"Gold appraisal certificate {shown['certificate_number']}")
        pdf.set_author("Touchstone")
        pdf.set_line_width(0.2)
        self.printable = Romaniser(_drawable_codepoints(pdf))
        self.pdf = pdf
        self.width = pdf.w - 2 * _MARGIN
        self.bottom = pdf.h - _MARGIN
        self.y = _MARGIN
        pdf.add_page()

    def _room_for(self, height: float) -> None:
        if self.y + height > self.bottom:
            self.pdf.add_page()
            self.y = _MARGIN

    def _font(self, size: float, bold: bool) -> float:
        """Selects the font and returns the line height it needs."""
        self.pdf.set_font(_FONT_FAMILY, "B" if bold else "", size)
        return size * _PT * 1.35

    def _wrap(self, text: str, width: float) -> list[str]:
        """Greedy word wrap to ``width`` mm in the current font; long words are cut."""
        measure = self.pdf.get_string_width
        text = self.printable(text)
        if measure(text) <= width:
            return [text]
        lines: list[str] = []
        current = ""
        for word in text.split(" "):
            candidate = f"{current} {word}" if current else word
            if measure(candidate) <= width or not candidate:
                current = candidate
                continue
            if current:
                lines.append(current)
            current = word
            while measure(current) > width and len(current) > 1:
                cut = len(current) - 1
                while cut > 1 and measure(current[:cut]) > width:
                    cut -= 1
                lines.append(current[:cut])
                current = current[cut:]
        lines.append(current)
        return lines

    def _draw_lines(
        self, lines: Sequence[str], x: float, top: float, width: float, line_h: float, align: str
    ) -> None:
        for number, line in enumerate(lines):
            offset = 0.0
            if align != "L":
                spare = width - self.pdf.get_string_width(line)
                offset = spare if align == "R" else spare / 2
            self.pdf.text(x + offset, top + line_h * (number + 0.75), line)

    def paragraph(self, text: str, *, size: float = 9, bold: bool = False) -> None:
        line_h = self._font(size, bold)
        lines = self._wrap(text, self.width)
        self._room_for(line_h * len(lines))
        self._draw_lines(lines, _MARGIN, self.y, self.width, line_h, "L")
        self.y += line_h * len(lines)

    def heading(self, text: str, *, keep_with: float = 12) -> None:
        """A section title, moved to the next page unless ``keep_with`` mm fit under it."""
        self.y += 2.5
        self._room_for(8 + keep_with)
        self.paragraph(text, size=11, bold=True)
        self.y += 0.8

    def pairs(self, rows: Sequence[tuple[str, str]]) -> None:
        label_w = 42.0
        for label, value in rows:
            line_h = self._font(9, False)
            lines = self._wrap(value, self.width - label_w)
            self._room_for(line_h * len(lines))
            self._draw_lines(lines, _MARGIN + label_w, self.y, self.width - label_w, line_h, "L")
            self._font(9, True)
            self._draw_lines([self.printable(label)], _MARGIN, self.y, label_w, line_h, "L")
            self.y += line_h * len(lines)

    def row(
        self,
        cells: Sequence[str],
        widths: Sequence[float],
        aligns: Sequence[str],
        *,
        bold: bool = False,
    ) -> None:
        """One bordered table row, as tall as its longest wrapped cell."""
        line_h = self._font(8, bold)
        wrapped = [
            self._wrap(text, width - 2 * _CELL_PAD)
            for text, width in zip(cells, widths, strict=True)
        ]
        height = line_h * max(len(lines) for lines in wrapped) + 0.8
        self._room_for(height)
        x = _MARGIN
        for lines, width, align in zip(wrapped, widths, aligns, strict=True):
            self.pdf.rect(x, self.y, width, height)
            self._draw_lines(
                lines, x + _CELL_PAD, self.y + 0.4, width - 2 * _CELL_PAD, line_h, align
            )
            x += width
        self.y += height

    def header(self) -> None:
        shown = self.shown
        self.paragraph(shown["bank"], size=15, bold=True)
        self.paragraph(f"Branch: {shown['branch']}", size=10)
        self.y += 2
        self.paragraph("Gold appraisal certificate", size=13, bold=True)
        self.y += 1
        self.pairs(
            [("Certificate No.", shown["certificate_number"]), ("Issued", issued_text(shown))]
        )

    def parties(self) -> None:
        self.heading("Customer and staff")
        self.pairs(party_rows(self.shown))

    def items(self) -> None:
        self.heading("Items")
        widths = [width for _, width, _ in ITEM_COLUMNS]
        self.row([t for t, _, _ in ITEM_COLUMNS], widths, ["C"] * len(widths), bold=True)
        aligns = [align for _, _, align in ITEM_COLUMNS]
        for number, item in enumerate(self.shown["items"], start=1):
            self.row(item_cells(number, item), widths, aligns)
        self.y += 1
        self.paragraph(CONFIDENCE_LEGEND, size=7.5)

    def purity_tests(self) -> None:
        """How each item's karat was read: what an auditor asks before trusting it."""
        tests = self.shown.get("purity_tests", [])
        if not tests:
            return
        self.heading("Purity tests (live touchstone)")
        for test in tests:
            self._room_for(12)
            self.paragraph(f"Item {test['item']}", size=9, bold=True)
            self.pairs(purity_rows(test))
            self.y += 1

    def valuation(self) -> None:
        self.heading("Valuation")
        self.pairs(valuation_rows(self.shown))

    def checks(self) -> None:
        self.heading("Lending rule checks")
        widths = (13.0, 50.0, self.width - 63.0)
        for check in self.shown["checks"]:
            verdict = "PASS" if check["passed"] else "FAIL"
            self.row([verdict, check_label(check), check["detail"]], widths, ("C", "L", "L"))

    def approval(self) -> None:
        """The approving manager's signature block: name, role, date and a line to sign on."""
        approval = self.shown.get("approval")
        if approval is None:
            return
        self.heading("Approval", keep_with=30)
        self.pairs(
            [
                ("Approved by", approval["name"] or "-"),
                ("Role", approval["role"]),
                ("Date", approval["date"] or "-"),
            ]
        )
        self.y += 12
        self._room_for(8)
        self.pdf.line(_MARGIN, self.y, _MARGIN + 80, self.y)
        line_h = self._font(8, False)
        self._draw_lines(
            ["Signature of the approving manager"], _MARGIN, self.y + 0.5, 80, line_h, "L"
        )
        self.y += line_h + 1

    def evidence(self, images: Sequence[tuple[str, bytes]]) -> None:
        if not images:
            return
        box_w, box_h, gap = 56.0, 42.0, 6.0
        self.heading("Evidence", keep_with=box_h + 6)
        per_row = int((self.width + gap) // (box_w + gap))
        for start in range(0, len(images), per_row):
            self._room_for(box_h + 6)
            for column, (label, jpeg) in enumerate(images[start : start + per_row]):
                left = _MARGIN + column * (box_w + gap)
                thumbnail = _thumbnail_jpeg(jpeg)
                line_h = self._font(8, False)
                if thumbnail is None:
                    self.pdf.rect(left, self.y, box_w, box_h)
                    middle = self.y + box_h / 2 - line_h / 2
                    self._draw_lines(["image unreadable"], left, middle, box_w, line_h, "C")
                else:
                    self.pdf.image(
                        thumbnail, x=left, y=self.y, w=box_w, h=box_h, keep_aspect_ratio=True
                    )
                label_lines = self._wrap(label, box_w)[:1]
                self._draw_lines(label_lines, left, self.y + box_h + 0.5, box_w, line_h, "C")
            self.y += box_h + 6

    def verification(self, digest: str, verify_url: str) -> None:
        qr_size = 38.0
        self.heading("Verification", keep_with=qr_size)
        self._room_for(qr_size)
        top = self.y
        text_w = self.width - qr_size - 5
        line_h = self._font(8, False)
        lines = [
            "SHA-256 digest of this certificate's contents:",
            digest[:32],
            digest[32:],
            "Scan the code or open:",
            *self._wrap(verify_url, text_w),
        ]
        if self.printable.replaced_any:
            lines += self._wrap(
                "Some characters are romanised or replaced here; the verification page "
                "shows every name as entered.",
                text_w,
            )
        self._draw_lines(lines, _MARGIN, top, text_w, line_h, "L")
        self.pdf.image(_qr_png(verify_url), x=_MARGIN + text_w + 5, y=top, w=qr_size)
        self.y = top + max(qr_size, line_h * len(lines))

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def render_certificate(data: CertificateData, *, verify_url: str) -> bytes:
    """The A4 certificate PDF, byte-for-byte the same for the same data and URL."""
    shown = shown_fields(data)
    document = _CertificatePdf(shown, data.issued_at)
    document.header()
    document.parties()
    document.items()
    document.purity_tests()
    document.valuation()
    document.checks()
    document.evidence(data.evidence)
    document.approval()
    document.verification(certificate_digest(data), verify_url)
    return document.output()
