"""The public verification page: what the certificate shows, only when it is genuine.

A page opened without the digest printed in the QR code (or with another one, or for a
record changed since issue) says "not verified" and nothing else: the number alone must
not reveal whose gold was appraised, for how much.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Final

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

_PAGE_CSS: Final = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:52rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}h3{font-size:1rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #bbb;padding:.25rem .4rem}
.num{text-align:right}.ok{background:#e3f4e3;color:#145214}.bad{background:#fbe3e3;color:#7a1010}
.status{padding:.75rem 1rem;border-radius:.4rem;font-weight:600}code{word-break:break-all}
.note{font-size:.85rem;color:#555}figure{margin:0 0 1rem}figure img{max-width:100%;height:auto}
"""
_MAX_EVIDENCE_PIXELS: Final = 1920 * 1080
"""The largest frame a purity test accepts; anything bigger was not taken by one."""


def _page(title: str, body: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_PAGE_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)


def _cells(cells: Sequence[str], *, tag: str = "td", numeric_from: int = 99) -> str:
    numeric = ' class="num"'
    return "".join(
        f"<{tag}{numeric if index >= numeric_from else ''}>{html.escape(cell)}</{tag}>"
        for index, cell in enumerate(cells)
    )


def _jpeg_or_none(jpeg: bytes) -> bytes | None:
    """The evidence as stored when it decodes as a JPEG of a camera frame's size, else None:
    the page shows the very bytes whose SHA-256 it prints, never a re-encoding."""
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            if image.format != "JPEG" or image.width * image.height > _MAX_EVIDENCE_PIXELS:
                return None
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return jpeg


def _evidence(images: Sequence[tuple[str, bytes]], hashes: Sequence[str]) -> str:
    figures = []
    for (label, jpeg), sha256 in zip(images, hashes, strict=True):
        readable = _jpeg_or_none(jpeg)
        picture = (
            "<p>image unreadable</p>"
            if readable is None
            else f'<img alt="{html.escape(label)}" '
            f'src="data:image/jpeg;base64,{base64.b64encode(readable).decode()}">'
        )
        figures.append(
            f"<figure>{picture}<figcaption>{html.escape(label)}<br>SHA-256 "
            f"<code>{html.escape(sha256)}</code></figcaption></figure>"
        )
    return "".join(figures)


def render_not_verified_html(number: str) -> str:
    """What a wrong, missing or stale digest gets: the verdict, and nothing of the certificate."""
    return _page(
        "Certificate not verified",
        [
            "<h1>Certificate not verified</h1>",
            '<p class="status bad">Not verified: this link does not carry the digest of '
            "certificate "
            f"{html.escape(number)} as the bank issued it.</p>",
            "<p>Scan the QR code on the printed certificate again, or ask the branch that "
            "issued it. Nothing about the certificate is shown without its digest.</p>",
        ],
    )


def render_verification_html(data: CertificateData) -> str:
    """The page of a genuine certificate: everything the certificate shows, its evidence
    images (only ever inlined here, behind the digest) and how each item was tested.

    Self-contained (inline CSS, images as data: URLs, no scripts); every value is escaped.
    """
    shown = shown_fields(data)
    items = "".join(
        f"<tr>{_cells(item_cells(number, item), numeric_from=2)}</tr>"
        for number, item in enumerate(shown["items"], start=1)
    )
    checks = "".join(
        f'<tr class="{"ok" if check["passed"] else "bad"}">'
        + _cells(["PASS" if check["passed"] else "FAIL", check_label(check), check["detail"]])
        + "</tr>"
        for check in shown["checks"]
    )
    tests = "".join(
        f"<h3>Item {html.escape(test['item'])}</h3><table>{_rows(purity_rows(test))}</table>"
        for test in shown.get("purity_tests", [])
    )
    approval = shown.get("approval")
    legend = CONFIDENCE_LEGEND if "purity_tests" in shown else ""  # format 1 had none
    body = [
        f"<h1>{html.escape(shown['bank'])}</h1>",
        f"<p>Branch: {html.escape(shown['branch'])}</p>",
        '<p class="status ok">Genuine: the digest matches the certificate the bank issued.</p>',
        "<h2>Certificate</h2><table>",
        _rows(
            [
                ("Certificate No.", shown["certificate_number"]),
                ("Issued", issued_text(shown)),
                *party_rows(shown),
            ]
        ),
        "</table><h2>Items</h2><table><tr>",
        _cells([title for title, _, _ in ITEM_COLUMNS], tag="th"),
        f'</tr>{items}</table><p class="note">{html.escape(legend)}</p>',
        f"<h2>Purity tests</h2>{tests}" if tests else "",
        "<h2>Valuation</h2><table>",
        _rows(valuation_rows(shown)),
        f"</table><h2>Lending rule checks</h2><table>{checks}</table>",
        "<h2>Approval</h2><table>"
        + _rows(
            [
                ("Approved by", approval["name"]),
                ("Role", approval["role"]),
                ("Date", approval["date"]),
            ]
        )
        + "</table>"
        if approval is not None
        else "",
        "<h2>Evidence</h2>",
        _evidence(data.evidence, [image["sha256"] for image in shown["evidence"]]),
        f"<h2>Digest</h2><p><code>{certificate_digest(data)}</code></p>",
    ]
    return _page(f"Certificate {shown['certificate_number']}", body)
