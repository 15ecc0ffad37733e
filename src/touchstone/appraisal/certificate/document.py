"""The appraisal certificate: a digest of what it shows, an A4 PDF and a verification page.

Everything the certificate shows is first reduced to one canonical "shown" mapping of
plain strings (``_shown``); the digest, the PDF and the HTML page are all made from it, so
a digest that matches proves the customer holds the certificate the bank issued, and a
change to any shown field changes the digest.

Personal numbers are masked before they reach that mapping: the certificate, the page and
the digest never carry a full phone or ID number (a SHA-256 over a 12-digit Aadhaar
number could be reversed by trying all 10^12 of them).

The PDF embeds a subset of DejaVu Sans shipped in ``fonts/`` (Latin, the rupee sign;
see ``fonts/LICENSE.txt``), so the output does not depend on the host's fonts and stays
small and quick to build. Characters that font lacks are not dropped: Indic scripts
(Devanagari, Tamil and the other Brahmic scripts) are romanised from their Unicode
character names, anything else becomes "?", and the certificate then says that the
verification page shows the names as entered.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Final

import qrcode
from fpdf import FPDF
from fpdf.fonts import TTFFont
from PIL import Image

from touchstone.appraisal.valuation import (
    ItemValuation,
    RuleCheck,
    format_inr,
    round_grams,
    round_money,
)

CERTIFICATE_FORMAT_VERSION: Final = 1
"""Part of the digest, so a future layout with other fields never collides with this one."""

_FONT_DIR: Final = Path(__file__).with_name("fonts")
_FONT_FAMILY: Final = "CertificateSans"
_MAX_EVIDENCE_PIXELS: Final = 40_000_000
_THUMBNAIL_BOX: Final = (400, 300)
"""Pixels for a 56 x 42 mm evidence box, about 180 dpi."""
_UNREADABLE: Final = "?"


@dataclass(frozen=True, slots=True)
class CertificateItem:
    """One line of the items table; ``confidence`` is the purity test's, from 0 to 1."""

    item_type: str
    count: int
    gross_weight_g: Decimal
    deduction_g: Decimal
    net_weight_g: Decimal
    karat: str | None
    confidence: Decimal | None
    value: Decimal

    @classmethod
    def from_valuation(cls, item: ItemValuation, confidence: Decimal | None) -> CertificateItem:
        return cls(
            item_type=item.item_type,
            count=item.count,
            gross_weight_g=item.gross_weight_g,
            deduction_g=item.deduction_g,
            net_weight_g=item.net_weight_g,
            karat=item.karat,
            confidence=confidence,
            value=item.value,
        )


@dataclass(frozen=True, slots=True)
class CertificateData:
    """What a certificate is made from; phone and ID number are given in full and masked here.

    ``issued_at`` must be timezone-aware: it is printed, digested and pinned as the PDF's
    creation date so that the same data always gives the same bytes. ``evidence`` holds
    (label, JPEG bytes) pairs; the digest covers each label and the SHA-256 of its bytes.
    """

    certificate_number: str
    issued_at: datetime
    bank_name: str
    branch_name: str
    customer_name: str
    customer_phone: str
    id_document_type: str
    id_document_number: str
    appraiser_name: str
    approver_name: str
    items: Sequence[CertificateItem]
    gold_rate_24k_per_g: Decimal
    total_gross_weight_g: Decimal
    total_net_weight_g: Decimal
    total_value: Decimal
    ltv_cap: Decimal
    eligible_max_loan: Decimal
    requested_amount: Decimal | None
    checks: Sequence[RuleCheck]
    evidence: Sequence[tuple[str, bytes]] = ()

    def __post_init__(self) -> None:
        if self.issued_at.utcoffset() is None:
            raise ValueError("issued_at must be timezone-aware")


def _mask_keeping_last_four(characters: str) -> str:
    shown = 4 if len(characters) >= 8 else 0
    return "X" * (len(characters) - shown) + characters[len(characters) - shown :]


def mask_phone(phone: str) -> str:
    """Only the last four digits, and only when there are enough digits to hide the rest."""
    return _mask_keeping_last_four("".join(ch for ch in phone if ch.isdigit()))


def mask_id_number(number: str) -> str:
    """Only the last four characters (as on a masked Aadhaar), never more."""
    return _mask_keeping_last_four("".join(ch for ch in number if ch.isalnum()).upper())


def _grams(value: Decimal) -> str:
    return str(round_grams(value))


def _money(value: Decimal) -> str:
    return str(round_money(value))


def _percent(fraction: Decimal) -> str:
    return str((fraction * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _shown(data: CertificateData) -> dict[str, Any]:
    """Everything the certificate shows, as canonical strings (and booleans)."""
    return {
        "format": CERTIFICATE_FORMAT_VERSION,
        "certificate_number": data.certificate_number,
        "issued_at": data.issued_at.isoformat(),
        "bank": data.bank_name,
        "branch": data.branch_name,
        "customer": {
            "name": data.customer_name,
            "phone": mask_phone(data.customer_phone),
            "id_document_type": data.id_document_type,
            "id_document_number": mask_id_number(data.id_document_number),
        },
        "appraiser": data.appraiser_name,
        "approver": data.approver_name,
        "items": [
            {
                "type": item.item_type,
                "count": str(item.count),
                "gross_g": _grams(item.gross_weight_g),
                "deduction_g": _grams(item.deduction_g),
                "net_g": _grams(item.net_weight_g),
                "karat": item.karat or "untested",
                "confidence_pct": "" if item.confidence is None else _percent(item.confidence),
                "value": _money(item.value),
            }
            for item in data.items
        ],
        "valuation": {
            "gold_rate_24k_per_g": _money(data.gold_rate_24k_per_g),
            "total_gross_g": _grams(data.total_gross_weight_g),
            "total_net_g": _grams(data.total_net_weight_g),
            "total_value": _money(data.total_value),
            "ltv_cap_pct": _percent(data.ltv_cap),
            "eligible_max_loan": _money(data.eligible_max_loan),
            "requested_amount": (
                "" if data.requested_amount is None else _money(data.requested_amount)
            ),
        },
        "checks": [
            {"rule": check.rule, "passed": check.passed, "detail": check.detail}
            for check in data.checks
        ],
        "evidence": [
            {"label": label, "sha256": hashlib.sha256(jpeg).hexdigest()}
            for label, jpeg in data.evidence
        ],
    }


def certificate_digest(data: CertificateData) -> str:
    """SHA-256 (hex) of the canonical JSON of what the certificate shows."""
    canonical = json.dumps(_shown(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _party_rows(shown: Mapping[str, Any]) -> list[tuple[str, str]]:
    customer = shown["customer"]
    return [
        ("Customer", customer["name"]),
        ("Phone", customer["phone"]),
        ("ID document", f"{customer['id_document_type']} {customer['id_document_number']}"),
        ("Appraiser", shown["appraiser"]),
        ("Approved by", shown["approver"]),
    ]


def _rupees(amount: str) -> str:
    return f"₹{format_inr(Decimal(amount))}"


def _valuation_rows(shown: Mapping[str, Any]) -> list[tuple[str, str]]:
    valuation = shown["valuation"]
    requested = valuation["requested_amount"]
    return [
        ("Gold rate (24K)", f"{_rupees(valuation['gold_rate_24k_per_g'])}/g"),
        ("Total gross weight", f"{valuation['total_gross_g']} g"),
        ("Total net weight", f"{valuation['total_net_g']} g"),
        ("Total value", _rupees(valuation["total_value"])),
        ("Loan-to-value cap", f"{valuation['ltv_cap_pct']}%"),
        ("Eligible loan", _rupees(valuation["eligible_max_loan"])),
        ("Requested loan", _rupees(requested) if requested else "not stated"),
    ]


def _item_cells(number: int, item: Mapping[str, str]) -> list[str]:
    return [
        str(number),
        item["type"],
        item["count"],
        item["gross_g"],
        item["deduction_g"],
        item["net_g"],
        item["karat"],
        item["confidence_pct"] or "-",
        format_inr(Decimal(item["value"])),
    ]


_INDIC_SCRIPTS: Final = frozenset(
    {
        "DEVANAGARI",
        "BENGALI",
        "GURMUKHI",
        "GUJARATI",
        "ORIYA",
        "TAMIL",
        "TELUGU",
        "KANNADA",
        "MALAYALAM",
    }
)
_REPEATED_LETTER: Final = re.compile(r"(.)\1+")
"""Doubled letters in names mark retroflex consonants (NNA, LLLA); one reads better."""
_INDIC_SIGNS: Final = {
    "ANUSVARA": "n",
    "CANDRABINDU": "n",
    "TIPPI": "n",
    "VISARGA": "h",
    "ADDAK": "",
    "AVAGRAHA": "",
}


class _Romaniser:
    """Makes text printable with the embedded font, romanising Indic letters by name.

    Indic consonant names carry the inherent vowel (KA); a following vowel sign replaces
    it and a virama removes it, which gives readable names ("murukan" for முருகன்).
    Only the PDF uses this; the digest and the HTML page keep the text as entered.
    """

    def __init__(self, supported: frozenset[int]) -> None:
        self._supported = supported
        self.replaced_any = False

    def __call__(self, text: str) -> str:
        out: list[str] = []
        inherent_vowel = False
        for char in unicodedata.normalize("NFC", text):
            if ord(char) in self._supported:
                out.append(char)
                inherent_vowel = False
                continue
            if unicodedata.category(char)[0] in "CZ":
                out.append(" ")
                inherent_vowel = False
                continue
            self.replaced_any = True
            script, _, rest = unicodedata.name(char, "").partition(" ")
            digit = unicodedata.decimal(char, None)
            if digit is not None:
                out.append(str(digit))
                inherent_vowel = False
            elif rest == "SIGN NUKTA":
                continue
            elif script not in _INDIC_SCRIPTS:
                out.append(_UNREADABLE)
                inherent_vowel = False
            elif rest.startswith("LETTER "):
                letter = rest.removeprefix("LETTER ").replace(" ", "").lower()
                inherent_vowel = letter[0] not in "aeiou" and letter.endswith("a")
                if inherent_vowel:
                    letter = _REPEATED_LETTER.sub(r"\1", letter)
                previous = next((piece for piece in reversed(out) if piece), "")
                if not previous[-1:].isalpha():
                    letter = letter.capitalize()
                out.append(letter)
            elif rest.startswith("VOWEL SIGN "):
                if inherent_vowel:
                    out[-1] = out[-1][:-1]
                out.append(rest.removeprefix("VOWEL SIGN ").replace(" ", "").lower())
                inherent_vowel = False
            elif rest in ("SIGN VIRAMA", "SIGN HALANT"):
                if inherent_vowel:
                    out[-1] = out[-1][:-1]
                inherent_vowel = False
            else:
                out.append(_INDIC_SIGNS.get(rest.removeprefix("SIGN "), _UNREADABLE))
                inherent_vowel = False
        return "".join(out)


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


_ITEM_COLUMNS: Final = (
    ("#", 8, "C"),
    ("Type", 26, "L"),
    ("Count", 13, "R"),
    ("Gross g", 21, "R"),
    ("Deduct. g", 21, "R"),
    ("Net g", 21, "R"),
    ("Karat", 22, "C"),
    ("Conf. %", 17, "R"),
    ("Value ₹", 31, "R"),
)


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
        self.printable = _Romaniser(_drawable_codepoints(pdf))
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
        issued = datetime.fromisoformat(shown["issued_at"])
        self.pairs(
            [
                ("Certificate No.", shown["certificate_number"]),
                ("Issued", issued.strftime("%d %b %Y %H:%M %Z")),
            ]
        )

    def parties(self) -> None:
        self.heading("Customer and staff")
        self.pairs(_party_rows(self.shown))

    def items(self) -> None:
        self.heading("Items")
        widths = [width for _, width, _ in _ITEM_COLUMNS]
        self.row([t for t, _, _ in _ITEM_COLUMNS], widths, ["C"] * len(widths), bold=True)
        aligns = [align for _, _, align in _ITEM_COLUMNS]
        for number, item in enumerate(self.shown["items"], start=1):
            self.row(_item_cells(number, item), widths, aligns)

    def valuation(self) -> None:
        self.heading("Valuation")
        self.pairs(_valuation_rows(self.shown))

    def checks(self) -> None:
        self.heading("Lending rule checks")
        widths = (13.0, 50.0, self.width - 63.0)
        for check in self.shown["checks"]:
            verdict = "PASS" if check["passed"] else "FAIL"
            self.row([verdict, check["rule"], check["detail"]], widths, ("C", "L", "L"))

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
    shown = _shown(data)
    document = _CertificatePdf(shown, data.issued_at)
    document.header()
    document.parties()
    document.items()
    document.valuation()
    document.checks()
    document.evidence(data.evidence)
    document.verification(certificate_digest(data), verify_url)
    return document.output()


def certificate_items(
    items: Sequence[ItemValuation], confidences: Mapping[str, Decimal]
) -> tuple[CertificateItem, ...]:
    """Certificate lines from valued items, with each item's purity-test confidence by id."""
    return tuple(
        CertificateItem.from_valuation(item, confidences.get(item.item_id)) for item in items
    )


_PAGE_CSS: Final = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:52rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #bbb;padding:.25rem .4rem}
.num{text-align:right}.ok{background:#e3f4e3;color:#145214}.bad{background:#fbe3e3;color:#7a1010}
.status{padding:.75rem 1rem;border-radius:.4rem;font-weight:600}code{word-break:break-all}
"""


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)


def _cells(cells: Sequence[str], *, tag: str = "td", numeric_from: int = 99) -> str:
    numeric = ' class="num"'
    return "".join(
        f"<{tag}{numeric if index >= numeric_from else ''}>{html.escape(cell)}</{tag}>"
        for index, cell in enumerate(cells)
    )


def render_verification_html(data: CertificateData, digest_ok: bool) -> str:
    """The public verification page: what the certificate shows and whether it is genuine.

    Self-contained (inline CSS, no scripts, no external assets); every value is escaped.
    """
    shown = _shown(data)
    status = (
        '<p class="status ok">Genuine: the digest matches the certificate the bank issued.</p>'
        if digest_ok
        else '<p class="status bad">Not verified: the digest does not match this certificate.</p>'
    )
    items = "".join(
        f"<tr>{_cells(_item_cells(number, item), numeric_from=2)}</tr>"
        for number, item in enumerate(shown["items"], start=1)
    )
    checks = "".join(
        f'<tr class="{"ok" if check["passed"] else "bad"}">'
        + _cells(["PASS" if check["passed"] else "FAIL", check["rule"], check["detail"]])
        + "</tr>"
        for check in shown["checks"]
    )
    body = [
        f"<h1>{html.escape(shown['bank'])}</h1>",
        f"<p>Branch: {html.escape(shown['branch'])}</p>",
        status,
        "<h2>Certificate</h2><table>",
        _rows(
            [
                ("Certificate No.", shown["certificate_number"]),
                ("Issued", shown["issued_at"]),
                *_party_rows(shown),
            ]
        ),
        "</table><h2>Items</h2><table><tr>",
        _cells([title for title, _, _ in _ITEM_COLUMNS], tag="th"),
        f"</tr>{items}</table><h2>Valuation</h2><table>",
        _rows(_valuation_rows(shown)),
        f"</table><h2>Lending rule checks</h2><table>{checks}</table>",
        "<h2>Evidence</h2><ul>",
        "".join(
            f"<li>{html.escape(image['label'])} <code>{image['sha256']}</code></li>"
            for image in shown["evidence"]
        ),
        f"</ul><h2>Digest</h2><p><code>{certificate_digest(data)}</code></p>",
    ]
    title = html.escape(f"Certificate {shown['certificate_number']}")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_PAGE_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )
